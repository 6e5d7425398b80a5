"""--serving-processes 1 against 2 on the same machine, round after round, with the Go load generator.

`python -m benchmarks.serving_processes [--members 1,3] [--rounds 3] [--taskset]` prints a Markdown table
per run (medians over rounds) and writes the raw rounds as JSON beside it when `--out` is given.

Every round measures each server in turn under the same load (same seed): pyetcd with one process,
pyetcd with two serving processes, and, at the 1-member put points, the do-nothing reference servicer.
`--taskset` instead pins one member to one core (the load generator to the other) and then to both
cores (the load generator shares them), for put and linearizable range at 256 clients.
Server CPU is the sum over a member's processes (core, client-port front, serving processes).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path

from benchmarks.compare import admin
from benchmarks.compare.goloadgen import GoLoadGenerator
from benchmarks.compare.plan import Mode, Point, Workload
from benchmarks.compare.results import Run
from benchmarks.compare.runner import Outcome, Settings, measure
from benchmarks.compare.servers import READY_TIMEOUT_S, Target, reference, serving_cluster, wait_serving

WARMUP_S = 1.0
DURATION_S = 4.0


def pyetcd_cluster(members: int, base: Path, serving: int, pin: str = "") -> Target:
    """A pyetcd cluster with `serving` serving processes per member, optionally under `taskset -c pin`."""
    return serving_cluster(members, base, serving, f"pyetcd N={serving}" + (f" cpus {pin}" if pin else ""), pin)


@contextlib.contextmanager
def running(targets: Sequence[Target]) -> Iterator[None]:
    try:
        for target in targets:
            for member in target.members:
                member.start()
        deadline = time.monotonic() + READY_TIMEOUT_S
        for target in targets:
            for member in target.members:
                wait_serving(member, deadline)
        yield
    finally:
        for target in targets:
            target.stop()


def median(values: Sequence[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def table(runs: Sequence[Run]) -> str:
    """Medians per (point, server): ops/s, p50, p99, server CPU µs/op, and the machine's busy share."""
    lines = ["| point | server | ops/s (median; min–max) | p50 ms | p99 ms | server CPU µs/op | machine busy |",
             "|---|---|---|---|---|---|---|"]
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.point.label, run.server), []).append(run)
    for (label, server), group in groups.items():
        ops = [run.throughput for run in group]
        busy = median([run.machine_busy_s / (run.duration_s * run.cpus) for run in group])
        cpu = median([run.server_cpu_us_per_op for run in group])
        p50, p99 = median([run.p50_ms for run in group]), median([run.p99_ms for run in group])
        lines.append(f"| {label} | {server} | {statistics.median(ops):,.0f} ({min(ops):,.0f}–{max(ops):,.0f}) | "
                     f"{p50 or 0:.2f} | {p99 or 0:.1f} | {cpu or 0:,.0f} | {busy or 0:.0%} |")
    return "\n".join(lines)


def rounds(points: Sequence[Point], targets: Sequence[Target], count: int, loadgen: GoLoadGenerator,
           outcome: Outcome, log_line: bool = True) -> None:
    mode = Mode("serving", tuple(points), count, WARMUP_S, DURATION_S, None)
    settings = Settings(processes=1)
    for index, point in enumerate(points):
        for round_ in range(1, count + 1):
            order = list(targets[round_ % len(targets):]) + list(targets[:round_ % len(targets)])
            for target in order:
                if target.kind == "reference" and point.workload is not Workload.PUT:
                    continue
                run = measure(loadgen, target, point, round_, mode, settings, 1000 + index * 10 + round_, outcome)
                outcome.runs.append(run)
                if log_line:
                    print(f"{point.label} {target.kind} round {round_}: {run.throughput:,.0f} ops/s "
                          f"(load {os.getloadavg()[0]:.1f})", flush=True)
                if point.workload.writes and target.kind != "reference":
                    admin.compact(target.endpoints[0])


def compare(members: int, clients: Sequence[int], count: int, base: Path, outcome: Outcome) -> None:
    targets = [pyetcd_cluster(members, base / f"m{members}", 1), pyetcd_cluster(members, base / f"m{members}", 2)]
    if members == 1:
        targets.append(reference(base))
    with running(targets), GoLoadGenerator() as loadgen:
        for target in targets[:2]:
            admin.prefill(target.endpoints[0])
        points = [Point(members, workload, n) for workload in (Workload.PUT, Workload.RANGE) for n in clients]
        rounds(points, targets, count, loadgen, outcome)


def pinned(count: int, base: Path, outcome: Outcome) -> None:
    """One member on core 0 (load generator on core 1), then on cores 0,1 (load generator on 0,1 too)."""
    points = [Point(1, workload, 256) for workload in (Workload.PUT, Workload.RANGE)]
    for server_cpus, loadgen_cpus in (("0", {1}), ("0,1", {0, 1})):
        targets = [pyetcd_cluster(1, base / f"pin{server_cpus}", n, server_cpus) for n in (1, 2)]
        os.sched_setaffinity(0, loadgen_cpus)  # the load generator runs as this process's child
        try:
            with running(targets), GoLoadGenerator() as loadgen:
                for target in targets:
                    admin.prefill(target.endpoints[0])
                rounds(points, targets, count, loadgen, outcome)
        finally:
            os.sched_setaffinity(0, range(os.cpu_count() or 1))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", default="1,3", help="cluster sizes, comma-separated")
    parser.add_argument("--clients", default="256,1", help="client counts, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--taskset", action="store_true", help="the 1-core / 2-core pinned comparison instead")
    parser.add_argument("--out", type=Path, help="write the raw rounds here (JSON)")
    args = parser.parse_args(argv)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"commit {commit}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"load average at start {os.getloadavg()[0]:.1f}", flush=True)
    outcome = Outcome()
    with tempfile.TemporaryDirectory(prefix="pyetcd-serving-bench-") as scratch:
        base = Path(scratch)
        if args.taskset:
            pinned(args.rounds, base, outcome)
        else:
            for members in (int(m) for m in args.members.split(",")):
                compare(members, [int(n) for n in args.clients.split(",")], args.rounds, base, outcome)
    print(table(outcome.runs))
    for note in outcome.notes:
        print(f"note: {note}")
    print(f"load average at end {os.getloadavg()[0]:.1f}")
    if args.out:
        args.out.write_text(json.dumps([asdict(run) for run in outcome.runs], default=str, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
