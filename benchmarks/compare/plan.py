"""What a benchmark run measures: workloads, points (workload x members x clients x value size) and modes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Workload(StrEnum):
    """The load one point puts on a server."""

    PUT = "put"
    RANGE = "range"  # linearizable: every read goes through ReadIndex
    SERIALIZABLE_RANGE = "serializable-range"  # answered from the member's local store
    TXN = "txn"  # compare mod_revision, then put
    MIXED = "mixed"  # 90% linearizable range, 10% put
    WATCH = "watch"  # N watchers on one prefix while a paced writer puts under it
    LEASE_KEEPALIVE = "lease-keepalive"  # one lease and one LeaseKeepAlive stream per client

    @property
    def reads_keyspace(self) -> bool:
        """Reads only mean something once every key of the keyspace holds a value."""
        return self in (Workload.RANGE, Workload.SERIALIZABLE_RANGE, Workload.MIXED)

    @property
    def writes(self) -> bool:
        """Leaves history behind, which is compacted away between runs."""
        return self in (Workload.PUT, Workload.TXN, Workload.MIXED, Workload.WATCH)


KEYSPACE = 100_000
BASE_VALUE_SIZE = 256
SWEEP_VALUE_SIZES = (256, 1024, 4096, 16384, 65536)
SWEEP_CLIENTS = 16
SERVERS = ("etcd", "pyetcd")
REFERENCE = "reference"
SERVING = "pyetcd-serving"  # pyetcd whose members serve clients from several processes (`--serving-processes`)
SERVING_PROCESSES = 2


@dataclass(frozen=True, slots=True, order=True)
class Point:
    """One cell of the comparison: both servers are measured under exactly this load."""

    members: int
    workload: Workload
    clients: int
    value_size: int = BASE_VALUE_SIZE

    @property
    def label(self) -> str:
        size = "" if self.value_size == BASE_VALUE_SIZE else f" {self.value_size}B"
        return f"{self.workload} m{self.members} c{self.clients}{size}"


@dataclass(frozen=True, slots=True)
class Mode:
    """A named plan: the points, how often each server is measured, and for how long."""

    name: str
    points: tuple[Point, ...]
    rounds: int  # A/B rounds per point: etcd, pyetcd, etcd, pyetcd, ...
    warmup_s: float
    duration_s: float
    reference_clients: int | None  # the 1-member put point also measured on the do-nothing servicer
    serving_points: tuple[Point, ...] = ()  # also measured on pyetcd with SERVING_PROCESSES serving processes

    def reference_point(self) -> Point | None:
        if self.reference_clients is None:
            return None
        point = Point(1, Workload.PUT, self.reference_clients)
        return point if point in self.points else None


def grid(workloads: tuple[Workload, ...], members: tuple[int, ...], clients: tuple[int, ...]) -> list[Point]:
    return [Point(m, w, c) for m in members for w in workloads for c in clients]


def value_size_sweep(members: tuple[int, ...]) -> list[Point]:
    return [Point(m, Workload.PUT, SWEEP_CLIENTS, size) for m in members for size in SWEEP_VALUE_SIZES]


def ordered(points: list[Point]) -> tuple[Point, ...]:
    """Deduplicated and grouped by cluster size (one cluster per size); in each group the workloads in
    their listed order, and the larger values last, so reads never meet them."""
    workload_order = list(Workload)
    return tuple(sorted(set(points), key=lambda p: (p.members, p.value_size != BASE_VALUE_SIZE,
                                                    workload_order.index(p.workload), p.value_size, p.clients)))


def serving_points(members: tuple[int, ...], workloads: tuple[Workload, ...]) -> tuple[Point, ...]:
    """Where serving processes are measured too: every workload at 256 clients (where one process is the
    bound) and put at one client (what the extra hop costs a lone client)."""
    return ordered([Point(m, w, 256) for m in members for w in workloads] + [Point(m, Workload.PUT, 1)
                                                                          for m in members])


def build_mode(name: str) -> Mode:
    if name == "tiny":
        return Mode("tiny", ordered(grid((Workload.PUT,), (1,), (16,))), rounds=2, warmup_s=0.3,
                    duration_s=1.0, reference_clients=16, serving_points=(Point(1, Workload.PUT, 16),))
    if name == "quick":
        workloads = (Workload.PUT, Workload.RANGE, Workload.SERIALIZABLE_RANGE)
        return Mode("quick", ordered(grid(workloads, (1, 3), (1, 256))), rounds=2, warmup_s=0.5,
                    duration_s=1.5, reference_clients=256,
                    serving_points=(Point(1, Workload.PUT, 256), Point(1, Workload.RANGE, 256)))
    if name == "full":
        points = grid(tuple(Workload), (1, 3), (1, 16, 256)) + value_size_sweep((1, 3))
        serving = serving_points((1,), tuple(Workload)) + serving_points((3,), (Workload.PUT, Workload.RANGE))
        return Mode("full", ordered(points), rounds=2, warmup_s=1.0, duration_s=5.0, reference_clients=256,
                    serving_points=serving)
    raise ValueError(f"unknown mode {name!r} (tiny, quick or full)")


MODES = ("tiny", "quick", "full")
