"""The data-scale mode: pyetcd and etcd on the same large stores, one member each.

Stores (each built from scratch on fresh members by `loadgen fill`, etcd's first, then pyetcd's):

- `flat`: `keys` keys, one revision each;
- `history`: `keys / history_revisions` keys written `history_revisions` times (the same number of
  revisions as `flat`, so a long history is compared with a wide keyspace of the same size);
- `history, compacted`: that store after a physical compaction at its last revision.

On each store, both servers get linearizable range and put load in alternating rounds (keys drawn from
the whole store), then `etcdctl defrag` and a restart (process start until a linearizable Range is
answered) are timed; RSS is read when a member is empty, once the store is written, at its peak and
after the restart.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from benchmarks.compare import procstats
from benchmarks.compare.clients import key
from benchmarks.compare.goloadgen import GoLoadGenerator
from benchmarks.compare.plan import BASE_VALUE_SIZE, Mode, Point, Workload
from benchmarks.compare.results import Run
from benchmarks.compare.runner import Outcome, Settings, fmt_ms, fmt_us, measure, start_clusters
from benchmarks.compare.servers import Member, Target
from etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc

Log = Callable[[str], None]

DATASCALE = "datascale"  # the mode's name on the command line
DEFAULT_KEYS = 100_000
DEFAULT_HISTORY_REVISIONS = 10
DEFAULT_CLIENTS = (256,)
WORKLOADS = (Workload.RANGE, Workload.PUT)  # reads first: they meet the store exactly as written
FLAT = "flat"
HISTORY = "history"
COMPACTED = "history, compacted"
STORES = (FLAT, HISTORY, COMPACTED)
ADMIN_TIMEOUT_S = 3600.0  # filling, compacting or defragmenting a large store on a slow machine
RESTART_TIMEOUT_S = 1800.0
SERVING_POLL_S = 0.01
# A channel that found the port closed waits out gRPC's reconnect backoff (1 s, then longer) before it
# tries again: without these, a restart would be timed to the client's next attempt, not to the server.
FAST_RECONNECT = [("grpc.initial_reconnect_backoff_ms", 10), ("grpc.min_reconnect_backoff_ms", 10),
                  ("grpc.max_reconnect_backoff_ms", 20)]


@dataclass(frozen=True, slots=True)
class DataScalePlan:
    """How large the stores are and what load each gets."""

    keys: int = DEFAULT_KEYS
    history_revisions: int = DEFAULT_HISTORY_REVISIONS
    clients: tuple[int, ...] = DEFAULT_CLIENTS
    rounds: int = 2
    warmup_s: float = 1.0
    duration_s: float = 3.0
    value_size: int = BASE_VALUE_SIZE

    def __post_init__(self) -> None:
        if self.keys < 1 or self.history_revisions < 1 or self.rounds < 1 or not self.clients:
            raise ValueError("keys, history revisions, rounds and clients must be positive")
        if self.keys > 10_000_000:
            raise ValueError("keys are named k0000000..k9999999: at most 10,000,000")

    @property
    def history_keys(self) -> int:
        return max(1, self.keys // self.history_revisions)

    def store_keys(self, store: str) -> int:
        return self.keys if store == FLAT else self.history_keys

    def store_revisions(self, store: str) -> int:
        """Revisions per key as the fill wrote them."""
        return 1 if store == FLAT else self.history_revisions

    @property
    def points(self) -> tuple[Point, ...]:
        return tuple(Point(1, workload, clients) for workload in WORKLOADS for clients in self.clients)

    def mode(self) -> Mode:
        """The load runs as the ordinary runner sees them."""
        return Mode(DATASCALE, self.points, self.rounds, self.warmup_s, self.duration_s, None)


@dataclass(frozen=True, slots=True)
class StoreRun:
    """One load run, on one store."""

    store: str
    run: Run


@dataclass(frozen=True, slots=True)
class StoreFigures:
    """What one server's member measured on one store outside the load runs (sizes in bytes)."""

    store: str
    server: str
    keys: int
    revisions: int  # written per key
    build_s: float  # the fill (flat, history) or the compaction (history, compacted)
    counted_keys: int  # keys the member holds once the store is built, as a count-only Range says
    first_key_version: int  # versions of the first key then: the revisions per key the fill wrote
    rss_empty: int  # VmRSS of the freshly started member, before the fill
    rss_loaded: int  # VmRSS once the store is written (or compacted), before any load
    peak_rss: int  # VmHWM over the build and the load runs
    db_size: int | None  # the backend's size as Status reports it, before defrag
    defrag_s: float | None  # `etcdctl defrag`, wall clock; None if it failed
    db_size_defragmented: int | None
    restart_s: float  # process start until a linearizable Range is answered
    rss_restarted: int  # VmRSS once the restarted member serves
    rss_restarted_anon: int  # its anonymous part (RssAnon): the heap, without the mapped database file

    @property
    def rss_per_key(self) -> float:
        """What the store added to the member's RSS, per key."""
        return (self.rss_loaded - self.rss_empty) / self.keys


@dataclass
class DataScaleOutcome:
    plan: DataScalePlan
    runs: list[StoreRun] = field(default_factory=list)
    figures: list[StoreFigures] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class FillResult:
    puts: int
    txns: int
    seconds: float
    revision: int


def fill(binary: Path, endpoint: str, keys: int, revisions: int, value_size: int, seed: int = 1) -> FillResult:
    """`loadgen fill`: every key written `revisions` times, 128 puts per txn, several txns in flight, in the
    random order `seed` gives (the same for every server)."""
    command = [str(binary), "fill", f"-endpoints={endpoint}", f"-keyspace={keys}", f"-revisions={revisions}",
               f"-value-size={value_size}", f"-seed={seed}", f"-timeout={ADMIN_TIMEOUT_S / 10:g}"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=ADMIN_TIMEOUT_S)
    lines = completed.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else {}
    except ValueError:
        answer = {}
    if completed.returncode != 0 or "puts" not in answer:
        raise RuntimeError(f"loadgen fill failed ({completed.returncode}): {answer.get('error', completed.stdout)} "
                           f"{completed.stderr[-2000:]}".strip())
    return FillResult(int(answer["puts"]), int(answer["txns"]), float(answer["seconds"]), int(answer["revision"]))


def compact(endpoint: str) -> float:
    """Physically compacts all history before the current revision; returns the seconds it took."""
    with grpc.insecure_channel(endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        revision = kv.Range(rpc_pb2.RangeRequest(key=b"bench-probe"), timeout=60).header.revision
        started = time.monotonic()
        kv.Compact(rpc_pb2.CompactionRequest(revision=revision, physical=True), timeout=ADMIN_TIMEOUT_S)
        return time.monotonic() - started


def census(endpoint: str) -> tuple[int, int]:
    """How many benchmark keys the member holds, and the version of the first one: proof that the store
    was built as planned before anything is measured on it."""
    with grpc.insecure_channel(endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        counted = kv.Range(rpc_pb2.RangeRequest(key=key(0)[:1], range_end=b"l", count_only=True), timeout=600)
        first = kv.Range(rpc_pb2.RangeRequest(key=key(0)), timeout=60)
        return int(counted.count), int(first.kvs[0].version) if first.kvs else 0


def db_size(endpoint: str) -> int | None:
    """The backend's size in bytes, as Maintenance.Status (and `etcdctl endpoint status`) reports it."""
    try:
        with grpc.insecure_channel(endpoint) as channel:
            return int(rpc_pb2_grpc.MaintenanceStub(channel).Status(rpc_pb2.StatusRequest(), timeout=60).dbSize)
    except grpc.RpcError:
        return None


def etcdctl_env() -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("ETCDCTL_")}
    env["ETCDCTL_API"] = "3"
    return env


def defrag(endpoint: str) -> tuple[float | None, str]:
    """`etcdctl defrag` against the member: its wall-clock seconds (None if it failed) and what it said."""
    command = ["etcdctl", f"--endpoints={endpoint}", f"--command-timeout={ADMIN_TIMEOUT_S:.0f}s", "defrag"]
    started = time.monotonic()
    completed = subprocess.run(command, capture_output=True, text=True, env=etcdctl_env(),
                               timeout=ADMIN_TIMEOUT_S + 60)
    elapsed = time.monotonic() - started
    said = (completed.stdout + completed.stderr).strip()
    return (elapsed if completed.returncode == 0 else None), said


def restart(member: Member) -> float:
    """Stops the member, then times it from process start until a linearizable Range is answered."""
    member.stop()
    started = time.monotonic()
    member.start()
    deadline = started + RESTART_TIMEOUT_S
    with grpc.insecure_channel(member.endpoint, options=FAST_RECONNECT) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        while True:
            if member.process is None or member.process.poll() is not None:
                raise RuntimeError(f"{member.name} exited while restarting:\n{member.log_tail()}")
            try:
                kv.Range(rpc_pb2.RangeRequest(key=b"bench-probe"), timeout=2)
                return time.monotonic() - started
            except grpc.RpcError as err:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{member.name} not serving {RESTART_TIMEOUT_S:.0f}s after a restart: "
                                       f"{err}\n{member.log_tail()}") from err
            time.sleep(SERVING_POLL_S)


@dataclass
class MemberState:
    """What is carried from one store's measurements to the next on the same member."""

    rss_empty: int
    peak_rss: int = 0


class DataScaleBench:
    """One data-scale benchmark in progress."""

    def __init__(self, plan: DataScalePlan, settings: Settings, loadgen: GoLoadGenerator, log: Log) -> None:
        self.plan = plan
        self.settings = settings
        self.loadgen = loadgen
        self.log = log
        self.mode = plan.mode()
        self.outcome = DataScaleOutcome(plan)
        self.runner_outcome = Outcome()  # measure() notes its failures here

    def run(self, base: Path) -> DataScaleOutcome:
        for index, (store, later) in enumerate(((FLAT, ()), (HISTORY, (COMPACTED,)))):
            with contextlib.ExitStack() as stack:
                stage_dir = base / store
                targets = start_clusters(1, stage_dir, stack, self.log)
                states = {target.kind: MemberState(procstats.rss_bytes(target.pids[0])) for target in targets}
                build = {target.kind: self.fill(target, store) for target in targets}
                self.measure_store(store, index, targets, states, build)
                for offset, next_store in enumerate(later, start=1):
                    # The put runs have written more: compaction must keep exactly what each server held.
                    before = {target.kind: census(target.endpoints[0]) for target in targets}
                    build = {}
                    for target in targets:
                        procstats.reset_peak_rss(target.pids[0])
                        build[target.kind] = compact(target.endpoints[0])
                        self.log(f"compacted {target.kind} in {build[target.kind]:.1f}s")
                    self.measure_store(next_store, index + offset, targets, states, build, before)
        self.outcome.notes += self.runner_outcome.notes
        return self.outcome

    def fill(self, target: Target, store: str) -> float:
        keys, revisions = self.plan.store_keys(store), self.plan.store_revisions(store)
        result = fill(self.loadgen.binary, target.endpoints[0], keys, revisions, self.plan.value_size,
                      self.settings.seed)
        self.log(f"filled {target.kind} with {keys:,} keys x {revisions} revision(s) in {result.seconds:.1f}s "
                 f"({result.puts / result.seconds:,.0f} puts/s, {result.txns:,} txns)")
        return result.seconds

    def measure_store(self, store: str, index: int, targets: list[Target], states: dict[str, MemberState],
                      build: dict[str, float], expected: dict[str, tuple[int, int]] | None = None) -> None:
        """The load runs, then defrag and restart, on the store the members hold; `expected`: each server's
        (keys, first key's version) if not as the plan built them."""
        expected = expected or {}
        loaded, counts = {}, {}
        for target in targets:
            pid = target.pids[0]
            loaded[target.kind] = procstats.rss_bytes(pid)
            states[target.kind].peak_rss = procstats.peak_rss_bytes(pid)
            counts[target.kind] = census(target.endpoints[0])
            wanted = expected.get(target.kind, (self.plan.store_keys(store), self.plan.store_revisions(store)))
            if counts[target.kind] != wanted:
                self.outcome.notes.append(f"{store}: {target.kind} holds {counts[target.kind][0]:,} keys, the "
                                          f"first at version {counts[target.kind][1]}, once built "
                                          f"(expected {wanted[0]:,} and {wanted[1]})")
        for point_index, point in enumerate(self.plan.points):
            for round_ in range(1, self.plan.rounds + 1):
                seed = self.settings.seed * 1_000_000 + index * 10_000 + point_index * 100 + round_
                for target in targets:
                    run = measure(self.loadgen, target, point, round_, self.mode, self.settings, seed,
                                  self.runner_outcome, keyspace=self.plan.store_keys(store))
                    self.outcome.runs.append(StoreRun(store, run))
                    states[target.kind].peak_rss = max(states[target.kind].peak_rss, *run.server_peak_rss)
                    self.log(f"{store}: {point.label} {target.kind} round {round_}: {run.throughput:,.0f} ops/s, "
                             f"p99 {fmt_ms(run.p99_ms)} ms, errors {run.errors or 0}, "
                             f"load generator {fmt_us(run.gen_cpu_us_per_op)} µs CPU/op")
        for target in targets:
            self.outcome.figures.append(self.store_figures(store, target, states[target.kind], build[target.kind],
                                                           counts[target.kind], loaded[target.kind]))

    def store_figures(self, store: str, target: Target, state: MemberState, build_s: float,
                      counts: tuple[int, int], rss_loaded: int) -> StoreFigures:
        member = target.members[0]
        endpoint = target.endpoints[0]
        state.peak_rss = max(state.peak_rss, procstats.peak_rss_bytes(member.pid))
        size = db_size(endpoint)
        defrag_s, said = defrag(endpoint)
        if defrag_s is None:
            self.outcome.notes.append(f"{store}: etcdctl defrag failed on {target.kind}: {said[-500:]}")
        size_after = db_size(endpoint)
        restart_s = restart(member)
        figures = StoreFigures(store, target.kind, self.plan.store_keys(store), self.plan.store_revisions(store),
                               build_s, *counts, state.rss_empty, rss_loaded, state.peak_rss, size, defrag_s,
                               size_after, restart_s, procstats.rss_bytes(member.pid),
                               procstats.rss_bytes(member.pid, "RssAnon"))
        self.log(f"{store}: {target.kind} RSS {rss_loaded / 2**20:,.0f} MiB (empty {state.rss_empty / 2**20:,.0f}), "
                 f"defrag {fmt_seconds(defrag_s)}s, restart {restart_s:.2f}s")
        state.peak_rss = 0  # the restarted process has its own high-water mark
        return figures


def fmt_seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def run_datascale(plan: DataScalePlan, settings: Settings, log: Log) -> DataScaleOutcome:
    """Every store, both servers; everything started here is stopped on the way out."""
    with tempfile.TemporaryDirectory(prefix="pyetcd-datascale-") as base, \
            GoLoadGenerator(procs=settings.loadgen_procs) as loadgen:
        return DataScaleBench(plan, settings, loadgen, log).run(Path(base))

