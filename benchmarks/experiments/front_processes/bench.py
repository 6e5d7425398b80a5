"""Measures the experiment: plain pyetcd, core + 1 front, core + 2 fronts and the do-nothing reference,
under benchmarks/compare's load generator, round after round in rotating order (A/B/C/D, B/C/D/A, ...).

`python -m benchmarks.experiments.front_processes.bench [--members 1,3] [--clients 16,256] [--rounds 3]`

Every server runs at once (each in its own data dir), so all see the same machine; the report gives
medians over the rounds, each server's CPU per operation (all of a member's processes summed) and
how the CPU split between core and fronts.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from benchmarks.compare import admin
from benchmarks.compare.loadgen import LoadGenerator
from benchmarks.compare.plan import REFERENCE, Mode, Point, Workload
from benchmarks.compare.report import errors, number, table
from benchmarks.compare.results import Run, Summary, ratio, summarize
from benchmarks.compare.runner import Outcome, Settings, compact, measure
from benchmarks.compare.servers import (
    READY_TIMEOUT_S,
    Member,
    Target,
    cluster,
    reference,
    wait_serving,
)
from benchmarks.experiments.front_processes.front import SERVING
from benchmarks.experiments.front_processes.launch import member_processes
from devservers import HOST, free_port

PLAIN = "pyetcd"
DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def fronted_kind(fronts: int) -> str:
    return f"core+{fronts}front" if fronts else "batched-1proc"


@dataclass
class FrontedTarget(Target):
    """A pyetcd cluster whose members are each a core and `fronts` front processes; the load goes to
    the members' public endpoints (shared by their fronts), the CPU is read from every process."""

    fronts: int = 1

    @property
    def endpoints(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(member.endpoint for member in self.members))

    def start(self) -> None:
        try:
            for member in self.members:
                member.start()
            deadline = time.monotonic() + READY_TIMEOUT_S
            for member in self.members:
                if member.name.endswith("-core"):
                    if not self.fronts:  # the core serves the client port itself
                        wait_serving(member, deadline)
                    continue
                wait_logged(member, SERVING, deadline)
                wait_serving(member, deadline)
        except BaseException:
            self.stop()
            raise


def wait_logged(member: Member, text: str, deadline: float) -> None:
    while text not in member.log_tail(200):
        if member.process is None or member.process.poll() is not None:
            raise RuntimeError(f"{member.name} exited early:\n{member.log_tail()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{member.name} never logged {text!r}:\n{member.log_tail()}")
        time.sleep(0.1)


def fronted_cluster(size: int, fronts: int, base: Path, front_args: Sequence[str]) -> FrontedTarget:
    """pyetcd's benchmark cluster, each member split into a core and its fronts (not started yet)."""
    plain = cluster("pyetcd", size, base)
    members: list[Member] = []
    for member in plain.members:
        specs = member_processes(member.command[1:], fronts, base, f"http://{HOST}:{free_port()}", front_args)
        members += [Member(spec.name, spec.argv, member.endpoint, base / f"{spec.name}.log") for spec in specs]
    return FrontedTarget(fronted_kind(fronts), members, fronts)


def start_targets(size: int, fronts: Sequence[int], base: Path, front_args: Sequence[str],
                  stack: contextlib.ExitStack) -> list[Target]:
    """Plain pyetcd and one fronted cluster per entry of `fronts`, all running, stopped with `stack`."""
    targets: list[Target] = []
    plain_dir = base / f"plain-m{size}"
    plain_dir.mkdir()
    targets.append(cluster("pyetcd", size, plain_dir))
    for count in fronts:
        directory = base / f"front{count}-m{size}"
        directory.mkdir()
        targets.append(fronted_cluster(size, count, directory, front_args))
    for target in targets:
        stack.callback(target.stop)
        target.start()
    return targets


def rotated(items: Sequence[Target], by: int) -> list[Target]:
    """Each round starts with the next server, so none always runs first."""
    shift = by % len(items)
    return list(items[shift:]) + list(items[:shift])


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: how much else the machine was doing."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run_points(points: Sequence[Point], targets: Sequence[Target], loadgen: LoadGenerator, mode: Mode,
               settings: Settings, outcome: Outcome) -> None:
    if any(point.workload.reads_keyspace for point in points):
        for target in targets:
            if target.kind != REFERENCE:
                admin.prefill(target.endpoints[0])
        log(f"prefilled {len(targets)} cluster(s)")
    for index, point in enumerate(points):
        for round_ in range(1, mode.rounds + 1):
            seed = settings.seed * 1_000_000 + point.members * 10_000 + index * 100 + round_
            for target in rotated(targets, round_ - 1):
                run = measure(loadgen, target, point, round_, mode, settings, seed, outcome)
                outcome.runs.append(run)
                split = "/".join(f"{cpu:.2f}" for cpu in run.server_cpu_s)
                log(f"{point.label} {target.kind} round {round_}: {run.throughput:,.0f} ops/s, "
                    f"p99 {number(run.p99_ms, 2)} ms, server CPU s {split}, machine busy "
                    f"{run.machine_busy_share:.0%}, errors {errors(run.errors)}, load {load_average()}")
                if point.workload.writes and target.kind != REFERENCE:
                    compact(target, outcome)


def cpu_split(runs: Sequence[Run]) -> str:
    """Median CPU seconds per process position (core, front1, ... per member), inside the window."""
    width = min(len(run.server_cpu_s) for run in runs)
    return " / ".join(f"{statistics.median(run.server_cpu_s[i] for run in runs):.2f}" for i in range(width))


def render(runs: Sequence[Run], mode: Mode, settings: Settings, notes: Sequence[str], context: dict[str, str]) -> str:
    summaries = summarize(runs)
    by_group: dict[tuple[Point, str], list[Run]] = {}
    for run in runs:
        by_group.setdefault((run.point, run.server), []).append(run)
    rows: list[list[str]] = []
    for (point, server), summary in summaries.items():
        plain: Summary | None = summaries.get((point, PLAIN))
        versus_plain = ratio(summary.throughput, plain.throughput if plain else None)
        rows.append([str(point.workload), str(point.members), str(point.clients), server,
                     number(summary.throughput), number(versus_plain, 2),
                     number(summary.p50_ms, 2), number(summary.p99_ms, 2), number(summary.server_cpu_us_per_op),
                     cpu_split(by_group[(point, server)]), f"{summary.machine_busy_share:.0%}",
                     f"{summary.other_cpu_share:.0%}", errors(summary.errors)])
    lines = [
        "# Front processes experiment",
        "",
        *(f"- {name}: {value}" for name, value in context.items()),
        f"- {len(runs)} runs: {mode.rounds} rounds per point, {mode.warmup_s:g}s warm-up + {mode.duration_s:g}s "
        f"window, {settings.processes} load-generator processes; medians over rounds",
        "",
        *table(["workload", "members", "clients", "server", "ops/s", "x plain", "p50 ms", "p99 ms",
                "server CPU us/op", "CPU s per process (core / fronts...)", "machine busy", "others' CPU",
                "errors"], rows),
    ]
    if notes:
        lines += ["", "Notes:", *(f"- {note}" for note in notes)]
    return "\n".join(lines) + "\n"


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.experiments.front_processes.bench",
                                     description=__doc__)
    numbers = lambda text: [int(n) for n in text.split(",")]  # noqa: E731
    parser.add_argument("--members", type=numbers, default=[1])
    parser.add_argument("--clients", type=numbers, default=[16, 256])
    parser.add_argument("--workloads", type=lambda text: [Workload(w) for w in text.split(",")],
                        default=[Workload.PUT, Workload.RANGE])
    parser.add_argument("--fronts", type=numbers, default=[1, 2],
                        help="front counts to compare with plain pyetcd (0: batching in the core process alone)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--processes", type=int, default=max(2, os.cpu_count() or 1), help="load processes")
    parser.add_argument("--max-in-flight", type=int, default=1, help="batches each front keeps at the core")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--name", default="latest", help="report file name (without extension)")
    return parser.parse_args(argv)


def stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds like Ctrl-C, so every server and worker is stopped


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    points = tuple(Point(m, w, c) for m in args.members for w in args.workloads for c in args.clients)
    mode = Mode("front-processes", points, args.rounds, args.warmup, args.duration, reference_clients=None)
    settings = Settings(processes=args.processes)
    front_args = [f"--max-in-flight={args.max_in_flight}"]
    context = {"started": uptime(), "fronts' batches in flight": str(args.max_in_flight)}
    outcome = Outcome()
    with contextlib.ExitStack() as stack:
        base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pyetcd-fronts-", dir="/tmp")))
        loadgen = stack.enter_context(LoadGenerator(settings.processes))
        ref: Target | None = None
        if not args.no_reference:
            ref = reference(base)
            stack.callback(ref.stop)
            ref.start()
        for size in args.members:
            with contextlib.ExitStack() as topology:
                targets = start_targets(size, args.fronts, base, front_args, topology)
                if ref is not None and size == 1:
                    targets.append(ref)
                log(f"{size} member(s): started {', '.join(t.kind for t in targets)}")
                run_points([p for p in points if p.members == size], targets, loadgen, mode, settings, outcome)
    context["finished"] = uptime()
    report = render(outcome.runs, mode, settings, outcome.notes, context)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.md").write_text(report)
    raw = {"context": context, "runs": [dataclasses.asdict(run) for run in outcome.runs], "notes": outcome.notes}
    (args.out / f"{args.name}.json").write_text(json.dumps(raw, indent=1) + "\n")
    print(report)
    return 0 if outcome.runs else 1


if __name__ == "__main__":
    sys.exit(main())
