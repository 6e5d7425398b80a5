"""Runs a mode's plan: one etcd and one pyetcd cluster per cluster size, both up at once, and for
every point the rounds etcd, pyetcd, etcd, pyetcd, ... under the same load (same seeds).

Everything started here is stopped on the way out, after a failure or Ctrl-C too.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from benchmarks.compare import admin, procstats
from benchmarks.compare.clients import LoadSpec
from benchmarks.compare.goloadgen import GoLoadGenerator
from benchmarks.compare.loadgen import Generator, LoadError, LoadGenerator
from benchmarks.compare.plan import KEYSPACE, REFERENCE, SERVERS, SERVING, Mode, Point, Workload
from benchmarks.compare.results import Run
from benchmarks.compare.servers import READY_TIMEOUT_S, Target, cluster, reference, serving_cluster, wait_serving

Log = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Settings:
    """How the load is generated, beside the mode's plan."""

    processes: int  # Python load-generator processes (the Go generator is one process per run)
    watch_put_rate: float = 100.0  # puts/s under the watched prefix; events/s = watchers x this
    seed: int = 1
    loadgen: str = "go"  # "go" (benchmarks/loadgen) or "python" (compare/loadgen.py)
    loadgen_procs: int = 0  # the Go generator's GOMAXPROCS (0: every core)
    serving_processes: int = 2  # per member of the SERVING cluster, measured at the mode's serving points


@dataclass
class Outcome:
    runs: list[Run] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what went wrong without stopping the benchmark


class ServerProbe:
    """The servers' CPU seconds inside the window and their peak RSS over the run, and how busy the
    whole machine was meanwhile."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.cpu_s: tuple[float, ...] = ()
        self.peak_rss: tuple[int, ...] = ()
        self.machine_busy_s = 0.0
        self._cpu_start: list[float] = []
        self._busy_start = 0.0

    def arm(self) -> None:
        for pid in self.pids:
            procstats.reset_peak_rss(pid)

    def begin(self) -> None:
        self._busy_start = procstats.machine_busy_seconds()
        self._cpu_start = [procstats.cpu_seconds(pid) for pid in self.pids]

    def end(self) -> None:
        cpu_end = [procstats.cpu_seconds(pid) for pid in self.pids]
        self.machine_busy_s = procstats.machine_busy_seconds() - self._busy_start
        self.cpu_s = tuple(end - start for start, end in zip(self._cpu_start, cpu_end, strict=True))
        self.peak_rss = tuple(procstats.peak_rss_bytes(pid) for pid in self.pids)


def run_plan(mode: Mode, settings: Settings, log: Log) -> Outcome:
    """Every point of `mode`, cluster size by cluster size; returns the runs in the order made."""
    with contextlib.ExitStack() as stack:
        base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pyetcd-bench-")))
        loadgen: Generator
        if settings.loadgen == "python":
            loadgen = stack.enter_context(LoadGenerator(settings.processes))
        else:
            loadgen = stack.enter_context(GoLoadGenerator(procs=settings.loadgen_procs))
        bench = Bench(mode, settings, loadgen, log)
        if bench.reference_point is not None:
            bench.reference = reference(base)
            stack.callback(bench.reference.stop)
            bench.reference.start()
        for members, group in itertools.groupby(mode.points, key=lambda point: point.members):
            points = list(group)
            serving = settings.serving_processes if any(p in mode.serving_points for p in points) else None
            with contextlib.ExitStack() as topology:
                bench.run_cluster_size(members, points, start_clusters(members, base, topology, log, serving))
        return bench.outcome


class Bench:
    """One benchmark in progress: the load generator, the reference, and the runs made so far."""

    def __init__(self, mode: Mode, settings: Settings, loadgen: Generator, log: Log) -> None:
        self.mode = mode
        self.settings = settings
        self.loadgen = loadgen
        self.log = log
        self.outcome = Outcome()
        self.reference_point = mode.reference_point()
        self.reference: Target | None = None
        self.total = sum(mode.rounds * (len(SERVERS) + (point in mode.serving_points) + (point == self.reference_point))
                         for point in mode.points)
        self.counter = itertools.count(1)

    def run_cluster_size(self, members: int, points: list[Point], targets: list[Target]) -> None:
        if any(point.workload.reads_keyspace for point in points):
            for target in targets:
                started = time.monotonic()
                admin.prefill(target.endpoints[0])
                self.log(f"prefilled {target.kind} ({members} member(s)) in {time.monotonic() - started:.1f}s")
        for index, point in enumerate(points):
            order = [target for target in targets if target.kind != SERVING or point in self.mode.serving_points]
            if self.reference is not None and point == self.reference_point:
                order.append(self.reference)
            for round_ in range(1, self.mode.rounds + 1):
                # The same seed for every server in a round: each gets the same key sequences.
                seed = self.settings.seed * 1_000_000 + members * 10_000 + index * 100 + round_
                for target in order:
                    self.run_once(target, point, round_, seed)

    def run_once(self, target: Target, point: Point, round_: int, seed: int) -> None:
        run = measure(self.loadgen, target, point, round_, self.mode, self.settings, seed, self.outcome)
        self.outcome.runs.append(run)
        self.log(f"[{next(self.counter)}/{self.total}] {point.label} {target.kind} round {round_}: "
                 f"{run.throughput:,.0f} ops/s, p99 {fmt_ms(run.p99_ms)} ms, errors {run.errors or 0}, "
                 f"load generator {fmt_us(run.gen_cpu_us_per_op)} µs CPU/op")
        if point.workload.writes and target.kind != REFERENCE:
            compact(target, self.outcome)


def start_clusters(members: int, base: Path, stack: contextlib.ExitStack, log: Log,
                   serving_processes: int | None = None) -> list[Target]:
    """etcd and pyetcd clusters of the same size (and a pyetcd one whose members have `serving_processes`
    serving processes, when given), started together and stopped with `stack`."""
    targets = [cluster(kind, members, base) for kind in SERVERS]
    if serving_processes is not None:
        targets.append(serving_cluster(members, base, serving_processes, SERVING))
    started = time.monotonic()
    for target in targets:
        stack.callback(target.stop)
        for member in target.members:
            member.start()
    deadline = started + READY_TIMEOUT_S
    for target in targets:
        for member in target.members:
            wait_serving(member, deadline)
    log(f"started {', '.join(target.kind for target in targets)}, {members} member(s) each, "
        f"in {time.monotonic() - started:.1f}s")
    return targets


def measure(loadgen: Generator, target: Target, point: Point, round_: int, mode: Mode, settings: Settings,
            seed: int, outcome: Outcome, keyspace: int = KEYSPACE) -> Run:
    """One window of `point`'s load on `target`, keys drawn from `keyspace`; a run that cannot even start
    is recorded as failed."""
    writer_rate = settings.watch_put_rate if point.workload is Workload.WATCH else 0.0
    spec = LoadSpec(point.workload, target.endpoints, point.clients, 0, point.value_size, seed, writer_rate,
                    keyspace=keyspace)
    probe = ServerProbe(target.pids)
    cpus = os.cpu_count() or 1
    try:
        result = loadgen.run(spec, mode.warmup_s, mode.duration_s, probe)
    except LoadError as err:
        for member in target.members:
            if member.process is not None and member.process.poll() is not None:
                raise RuntimeError(f"{member.name} died during {point.label}:\n{member.log_tail()}") from err
        outcome.notes.append(f"{point.label} {target.kind} round {round_} failed: {err}")
        return Run.measured(point, target.kind, round_, mode.duration_s, [], {"RUN_FAILED": 1}, (), (), 0.0, 0,
                            0.0, cpus)
    return Run.measured(point, target.kind, round_, mode.duration_s, result.latencies, result.errors,
                        probe.cpu_s, probe.peak_rss, result.cpu_seconds, result.processes,
                        probe.machine_busy_s, cpus)


def compact(target: Target, outcome: Outcome) -> None:
    try:
        admin.compact(target.endpoints[0])
    except grpc.RpcError as err:
        outcome.notes.append(f"compacting {target.kind} failed: {err}")


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def fmt_us(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"
