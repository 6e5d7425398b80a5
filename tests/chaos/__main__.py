"""`python -m tests.chaos --duration 600`: one chaos run against a pyetcd cluster; exit 1 if a check fails."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from tests.chaos.buggy_member import BUGS
from tests.chaos.clients import WorkloadConfig
from tests.chaos.harness import ChaosRun, RunConfig
from tests.chaos.history import load_operations
from tests.chaos.linearizability import Verdict, check_history
from tests.chaos.nemesis import FAULTS, NemesisConfig

INJECTIONS = ("stale-reads", *BUGS)
"""Deliberate bugs the checks must catch: one in the clients, the others in the members."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load and faults")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--members", type=int, default=3, choices=(3, 5))
    parser.add_argument("--binary", default="pyetcd", choices=("pyetcd", "etcd"),
                        help="the server under test; etcd checks the harness against the real thing")
    parser.add_argument("--workers", type=int, default=5)
    parser.add_argument("--rate", type=float, default=40.0, help="client operations per second, all workers")
    parser.add_argument("--watchers", type=int, default=2)
    parser.add_argument("--faults", default=",".join(FAULTS), help=f"comma-separated subset of {','.join(FAULTS)}")
    parser.add_argument("--no-faults", action="store_true", help="load only: a baseline run")
    parser.add_argument("--snapshot-count", type=int, default=None, help="pass --snapshot-count to the members")
    parser.add_argument("--member-flag", action="append", default=[], metavar="FLAG",
                        help="one more flag for every member, e.g. --member-flag=--pre-vote=true")
    parser.add_argument("--election-timeout", type=int, default=1000, help="milliseconds")
    parser.add_argument("--heartbeat-interval", type=int, default=100, help="milliseconds")
    parser.add_argument("--inject", choices=INJECTIONS, action="append", default=[],
                        help="a deliberate bug the checks must catch: stale-reads is in the clients, "
                             "the others are patched into every member (see buggy_member.py)")
    parser.add_argument("--workdir", type=Path, default=None, help="run directory (default: a new temp dir)")
    parser.add_argument("--check", type=Path, default=None, metavar="HISTORY_JSONL",
                        help="only check a recorded history.jsonl for linearizability")
    return parser.parse_args(argv)


def config_from(args: argparse.Namespace) -> RunConfig:
    faults = [f for f in args.faults.split(",") if f] if not args.no_faults else []
    nemesis = NemesisConfig(faults=faults)
    workload = WorkloadConfig(workers=args.workers, rate=args.rate, stale_reads="stale-reads" in args.inject)
    member_bugs = [bug for bug in args.inject if bug in BUGS]
    if len(member_bugs) > 1 or (member_bugs and args.binary != "pyetcd"):
        raise SystemExit("--inject: at most one member bug, and only into pyetcd")
    binary = f"pyetcd+{member_bugs[0]}" if member_bugs else args.binary
    return RunConfig(duration=args.duration, seed=args.seed, members=args.members, binary=binary,
                     watchers=args.watchers,
                     workdir=args.workdir, heartbeat_ms=args.heartbeat_interval, election_ms=args.election_timeout,
                     snapshot_count=args.snapshot_count, member_flags=tuple(args.member_flag), workload=workload,
                     nemesis=nemesis)


async def _run_until_signalled(run: ChaosRun) -> int:
    task = asyncio.ensure_future(run.run())
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)  # the run's finally stops every process
    try:
        report = await task
    except asyncio.CancelledError:
        print(f"interrupted; run directory {run.workdir}", file=sys.stderr)
        return 130
    print(report.summary())
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.check is not None:
        result = check_history(load_operations(args.check))
        print(result.explain())
        return 0 if result.verdict is Verdict.LINEARIZABLE else 1
    return asyncio.run(_run_until_signalled(ChaosRun(config_from(args))))


if __name__ == "__main__":
    sys.exit(main())
