"""`python -m benchmarks.compare`: runs a mode's plan and writes latest.md, latest.json and the plots."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from benchmarks.compare.datascale import (
    DATASCALE,
    DEFAULT_HISTORY_REVISIONS,
    DEFAULT_KEYS,
    DataScalePlan,
    run_datascale,
)
from benchmarks.compare.goloadgen import LOADGEN_BINARY, GoLoadGenerator
from benchmarks.compare.plan import (
    BASE_VALUE_SIZE,
    MODES,
    SERVING,
    SERVING_PROCESSES,
    Mode,
    Workload,
    build_mode,
    grid,
    ordered,
    value_size_sweep,
)
from benchmarks.compare.runner import Outcome, Settings, run_plan
from devservers import PYETCD_BINARY, REPO, binary_path

DEFAULT_OUT = REPO / "benchmarks" / "results"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__)
    parser.add_argument("--mode", choices=(*MODES, DATASCALE), default="quick",
                        help="tiny: a smoke run; quick: a few minutes; full: every workload and the value sweep; "
                             "datascale: large stores and long histories (writes datascale.md, .json, .png)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where latest.md, latest.json and PNGs go")
    parser.add_argument("--loadgen", choices=("go", "python"), default="go",
                        help="go: benchmarks/loadgen, one process over etcd's Go gRPC stubs (build it with "
                             "`make loadgen`); python: the older grpc.aio worker pool, which costs more CPU per "
                             "request than the servers it measures")
    parser.add_argument("--loadgen-procs", type=int, default=0,
                        help="--loadgen go: cores' worth of threads it may run on (its GOMAXPROCS; default 0: "
                             "every core)")
    parser.add_argument("--processes", type=int, default=max(2, os.cpu_count() or 1),
                        help="--loadgen python: worker processes (default: one per core, at least 2)")
    parser.add_argument("--workloads", type=lambda text: [Workload(name) for name in text.split(",")],
                        help="comma-separated subset of: " + ", ".join(Workload))
    parser.add_argument("--members", type=lambda text: [int(n) for n in text.split(",")], help="e.g. 1,3")
    parser.add_argument("--clients", type=lambda text: [int(n) for n in text.split(",")], help="e.g. 1,16,256")
    parser.add_argument("--rounds", type=int, help="A/B rounds per point (default: the mode's)")
    parser.add_argument("--warmup", type=float, help="seconds of load before each window")
    parser.add_argument("--duration", type=float, help="seconds in each measured window")
    parser.add_argument("--watch-put-rate", type=float, default=100.0, help="puts/s under the watched prefix")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--serving-processes", type=int,
                        help=f"serving processes per member of the third cluster (`{SERVING}`) measured at the "
                             f"mode's serving points (default {SERVING_PROCESSES}; 1 leaves that cluster out)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNGs")
    parser.add_argument("--keys", type=int,
                        help=f"--mode datascale: keys of the flat store (default {DEFAULT_KEYS:,}; the history store "
                             "has keys / --history-revisions keys, so as many revisions)")
    parser.add_argument("--history-revisions", type=int,
                        help=f"--mode datascale: revisions per key of the history store (default "
                             f"{DEFAULT_HISTORY_REVISIONS})")
    args = parser.parse_args(argv)
    if args.mode == DATASCALE:
        refused = [name for name, value in (("--workloads", args.workloads), ("--members", args.members),
                                            ("--serving-processes", args.serving_processes)) if value is not None]
        if refused:
            parser.error(f"--mode datascale runs range and put on one member per server: {', '.join(refused)} "
                         "does not apply")
        if args.loadgen != "go":
            parser.error("--mode datascale needs the Go load generator (it fills the stores)")
        if (args.keys is not None and args.keys < 1) or (args.history_revisions is not None
                                                         and args.history_revisions < 1):
            parser.error("--keys and --history-revisions must be positive")
    elif args.keys is not None or args.history_revisions is not None:
        parser.error("--keys and --history-revisions apply to --mode datascale only")
    if args.serving_processes is None:
        args.serving_processes = SERVING_PROCESSES
    elif not 1 <= args.serving_processes <= 64:
        parser.error("--serving-processes must be from 1 to 64, as pyetcd's own flag")
    return args


def datascale_plan(args: argparse.Namespace) -> DataScalePlan:
    """The data-scale plan with any of its sizes, load and timings replaced from the command line."""
    plan = DataScalePlan()
    return dataclasses.replace(
        plan, keys=args.keys or plan.keys, history_revisions=args.history_revisions or plan.history_revisions,
        clients=tuple(args.clients or plan.clients), rounds=args.rounds or plan.rounds,
        warmup_s=plan.warmup_s if args.warmup is None else args.warmup, duration_s=args.duration or plan.duration_s)


def customized(mode: Mode, args: argparse.Namespace) -> Mode:
    """The mode with any of its plan and timings replaced from the command line."""
    if args.workloads or args.members or args.clients:
        workloads = tuple(args.workloads or dict.fromkeys(point.workload for point in mode.points))
        members = tuple(args.members or sorted({point.members for point in mode.points}))
        clients = tuple(args.clients or sorted({point.clients for point in mode.points}))
        points = grid(workloads, members, clients)
        if Workload.PUT in workloads and any(point.value_size != BASE_VALUE_SIZE for point in mode.points):
            points += value_size_sweep(members)  # the mode sweeps value sizes: keep doing so
        mode = dataclasses.replace(mode, points=ordered(points), reference_clients=max(clients),
                                   serving_points=tuple(p for p in mode.serving_points if p in points))
    if args.serving_processes == 1:
        mode = dataclasses.replace(mode, serving_points=())
    return dataclasses.replace(
        mode, rounds=args.rounds or mode.rounds,
        warmup_s=mode.warmup_s if args.warmup is None else args.warmup,
        duration_s=args.duration or mode.duration_s)


def command_output(command: list[str]) -> str:
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=10, cwd=REPO)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    lines = completed.stdout.strip().splitlines()
    return lines[0] if completed.returncode == 0 and lines else "unknown"


def load_generator_context(settings: Settings) -> str:
    if settings.loadgen == "python":
        return f"Python grpc.aio, {settings.processes} processes"
    procs = f", GOMAXPROCS {settings.loadgen_procs}" if settings.loadgen_procs else ""
    return f"Go ({GoLoadGenerator().version()}), 1 process{procs}"


def machine_context(settings: Settings) -> dict[str, str]:
    """Where and on what the numbers were taken, for the report's header."""
    model = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = command_output(["git", "rev-parse", "--short", "HEAD"])
    dirty = command_output(["git", "status", "--porcelain", "--untracked-files=no"])
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} x {model}",
        "etcd": command_output([binary_path("etcd"), "--version"]).removeprefix("etcd Version: "),
        "pyetcd": commit + (" (with local changes)" if dirty not in ("", "unknown") else ""),
        "python": platform.python_version(),
        "load generator": load_generator_context(settings),
    }


def write_results(out_dir: Path, mode: Mode, settings: Settings, outcome: Outcome, context: dict[str, str],
                  plots: bool) -> Path:
    from benchmarks.compare.report import render
    from benchmarks.compare.results import summarize

    out_dir.mkdir(parents=True, exist_ok=True)
    report = out_dir / "latest.md"
    report.write_text(render(mode, settings, outcome, context))
    raw = {"mode": dataclasses.asdict(mode), "settings": dataclasses.asdict(settings), "context": context,
           "runs": [dataclasses.asdict(run) for run in outcome.runs], "notes": outcome.notes}
    (out_dir / "latest.json").write_text(json.dumps(raw, indent=1) + "\n")
    if plots:
        from benchmarks.compare.plots import write_plots

        write_plots(summarize(outcome.runs), out_dir)
    return report


def stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds like Ctrl-C, so every server and worker is stopped


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main_datascale(plan: DataScalePlan, settings: Settings, context: dict[str, str], args: argparse.Namespace) -> int:
    from benchmarks.compare.datascale_report import write_datascale_results

    log(f"datascale mode: {plan.keys:,} keys x 1 revision, {plan.history_keys:,} keys x {plan.history_revisions} "
        f"revisions (then compacted); range and put at {', '.join(map(str, plan.clients))} client(s), "
        f"{plan.rounds} rounds, {plan.warmup_s:g}s warm-up + {plan.duration_s:g}s each, load generator: "
        f"{context['load generator']}")
    try:
        outcome = run_datascale(plan, settings, log)
    except KeyboardInterrupt:
        log("interrupted: every server and load process has been stopped")
        return 130
    report = write_datascale_results(args.out, outcome, settings, context, plots=not args.no_plots)
    print(report.read_text())
    log(f"wrote {report}")
    return 0 if outcome.runs and outcome.figures else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    if not PYETCD_BINARY.exists():
        log(f"{PYETCD_BINARY} is missing: run `make install` first")
        return 2
    if args.loadgen == "go" and not LOADGEN_BINARY.exists():
        log(f"{LOADGEN_BINARY} is missing: run `make loadgen` first")
        return 2
    if shutil.which("etcd") is None:
        log("etcd is not installed: run `make etcd-binaries` first")
        return 2
    settings = Settings(processes=args.processes, watch_put_rate=args.watch_put_rate, seed=args.seed,
                        loadgen=args.loadgen, loadgen_procs=args.loadgen_procs,
                        serving_processes=args.serving_processes)
    context = machine_context(settings)
    if args.mode == DATASCALE:
        return main_datascale(datascale_plan(args), settings, context, args)
    mode = customized(build_mode(args.mode), args)
    log(f"{mode.name} mode: {len(mode.points)} points x {mode.rounds} rounds, "
        f"{mode.warmup_s:g}s warm-up + {mode.duration_s:g}s each, load generator: {context['load generator']}")
    try:
        outcome = run_plan(mode, settings, log)
    except KeyboardInterrupt:
        log("interrupted: every server and load process has been stopped")
        return 130
    report = write_results(args.out, mode, settings, outcome, context, plots=not args.no_plots)
    print(report.read_text())
    log(f"wrote {report}")
    return 0 if outcome.runs else 1
