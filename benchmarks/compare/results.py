"""What one run measured (`Run`) and the medians over a point's rounds (`Summary`)."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.compare.plan import Point


def percentile_ms(ordered: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile of latencies sorted ascending, in milliseconds."""
    if not ordered:
        return None
    rank = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return ordered[rank] * 1000


@dataclass(frozen=True, slots=True)
class Run:
    """One server under one point's load for one window."""

    point: Point
    server: str  # "etcd", "pyetcd" or "reference"
    round: int
    duration_s: float
    ops: int
    p50_ms: float | None
    p99_ms: float | None
    p999_ms: float | None
    errors: dict[str, int]  # gRPC status name -> count, warm-up included
    server_cpu_s: tuple[float, ...]  # per member, inside the window
    server_peak_rss: tuple[int, ...]  # bytes, per member, warm-up included
    gen_cpu_s: float  # all load-generator processes, inside the window
    gen_processes: int
    machine_busy_s: float  # every core's non-idle time inside the window, whoever used it
    cpus: int

    @classmethod
    def measured(cls, point: Point, server: str, round_: int, duration_s: float, latencies: Sequence[float],
                 errors: dict[str, int], server_cpu_s: tuple[float, ...], server_peak_rss: tuple[int, ...],
                 gen_cpu_s: float, gen_processes: int, machine_busy_s: float, cpus: int) -> Run:
        ordered = sorted(latencies)
        return cls(point, server, round_, duration_s, len(ordered), percentile_ms(ordered, 0.50),
                   percentile_ms(ordered, 0.99), percentile_ms(ordered, 0.999), dict(errors), server_cpu_s,
                   server_peak_rss, gen_cpu_s, gen_processes, machine_busy_s, cpus)

    @property
    def throughput(self) -> float:
        return self.ops / self.duration_s

    @property
    def gen_cpu_us_per_op(self) -> float | None:
        return self.gen_cpu_s / self.ops * 1e6 if self.ops else None

    @property
    def server_cpu_us_per_op(self) -> float | None:
        return sum(self.server_cpu_s) / self.ops * 1e6 if self.ops else None

    @property
    def gen_cpu_share(self) -> float:
        """The load generator's share of the whole machine (all cores) during the window."""
        return self.gen_cpu_s / (self.duration_s * self.cpus)

    @property
    def machine_busy_share(self) -> float:
        """How busy all cores were during the window; near 1 the machine, not the server, set the pace."""
        return self.machine_busy_s / (self.duration_s * self.cpus)

    @property
    def other_cpu_share(self) -> float:
        """What neither the servers nor the load generator used: other work on the machine."""
        other = self.machine_busy_s - sum(self.server_cpu_s) - self.gen_cpu_s
        return max(0.0, other) / (self.duration_s * self.cpus)


def median(values: Sequence[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return statistics.median(known) if known else None


@dataclass(frozen=True, slots=True)
class Summary:
    """One server at one point: medians over its rounds; errors summed, memory at its peak."""

    point: Point
    server: str
    rounds: int
    throughput: float
    p50_ms: float | None
    p99_ms: float | None
    p999_ms: float | None
    errors: dict[str, int]
    server_cpu_s: float  # all members together
    server_cpu_us_per_op: float | None
    peak_rss: int  # the largest member
    gen_cpu_us_per_op: float | None
    gen_cpu_share: float
    other_cpu_share: float
    machine_busy_share: float

    @classmethod
    def of(cls, runs: Sequence[Run]) -> Summary:
        errors: Counter[str] = Counter()
        for run in runs:
            errors.update(run.errors)
        throughput = median([run.throughput for run in runs])
        return cls(
            runs[0].point, runs[0].server, len(runs), throughput or 0.0,
            median([run.p50_ms for run in runs]), median([run.p99_ms for run in runs]),
            median([run.p999_ms for run in runs]), dict(errors),
            median([sum(run.server_cpu_s) for run in runs]) or 0.0,
            median([run.server_cpu_us_per_op for run in runs]),
            max(max(run.server_peak_rss, default=0) for run in runs),
            median([run.gen_cpu_us_per_op for run in runs]),
            median([run.gen_cpu_share for run in runs]) or 0.0,
            median([run.other_cpu_share for run in runs]) or 0.0,
            median([run.machine_busy_share for run in runs]) or 0.0,
        )


def summarize(runs: Sequence[Run]) -> dict[tuple[Point, str], Summary]:
    """(point, server) -> its summary, in the order the runs were made."""
    grouped: dict[tuple[Point, str], list[Run]] = {}
    for run in runs:
        grouped.setdefault((run.point, run.server), []).append(run)
    return {group: Summary.of(members) for group, members in grouped.items()}


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator
