"""`python -m raft.sim`: run seeded schedules and report any broken Raft property.

    python -m raft.sim --seeds 2000                        # seeds 0..1999, summary at the end
    python -m raft.sim --driver --seeds 1000               # the same, members run raft/node.py
    python -m raft.sim --seed 1234 --steps 400 --trace     # replay one run, narrated
    python -m raft.sim --scenario figure-8 --trace         # the paper's Figure 8, step by step
    python -m raft.sim --scenario figure-8 --view          # the same in the browser, step by step
    python -m raft.sim --seed 1234 --view                  # any seeded run in the browser
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from raft.sim.cluster import Cluster
from raft.sim.driven import DrivenCluster
from raft.sim.invariants import Violation
from raft.sim.scenarios import SCENARIOS
from raft.sim.schedule import SimResult, run_seed
from raft.sim.trace import Trace

DEFAULT_STEPS = 400


def replay_command(seed: int, steps: int, nodes: int, check_liveness: bool, driver: bool = False) -> str:
    """The one command that replays a schedule with its trace."""
    extra = "" if check_liveness else " --no-liveness"
    if driver:
        extra += " --driver"
    return f"python -m raft.sim --seed {seed} --steps {steps} --nodes {nodes}{extra} --trace"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m raft.sim", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=100, help="how many seeded schedules to run")
    p.add_argument("--start", type=int, default=0, help="first seed")
    p.add_argument("--seed", type=int, default=None, help="run exactly this one seed")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="events per schedule")
    p.add_argument("--nodes", type=int, choices=(3, 5), default=3, help="initial voters")
    p.add_argument("--trace", action="store_true", help="print a narrated trace of each run")
    p.add_argument("--core-log", action="store_true", help="with --trace, also show the core's own log lines")
    p.add_argument("--no-liveness", dest="liveness", action="store_false",
                   help="skip the end-of-run check that a healed cluster makes progress")
    p.add_argument("--driver", action="store_true",
                   help="members run the production driver (raft/node.py) on a virtual clock, "
                        "not the core through the shared Ready cycle")
    p.add_argument("--scenario", choices=sorted(SCENARIOS), default=None,
                   help="play a hand-written scenario instead of seeded schedules")
    p.add_argument("--view", action="store_true",
                   help="serve a step-through of the run (--scenario, or --seed) in the browser")
    p.add_argument("--view-port", type=int, default=None,
                   help="with --view, the port on 127.0.0.1 to serve it on (default 2390)")
    p.add_argument("--max-failures", type=int, default=10, help="stop after this many failing seeds")
    return p.parse_args(argv)


def run_scenario(name: str, trace_on: bool, core_log: bool) -> int:
    trace = Trace(enabled=trace_on, out=sys.stdout if trace_on else None, core_lines=core_log)
    try:
        SCENARIOS[name](trace)
    except Violation as v:
        print(f"scenario {name}: VIOLATION {v}")
        return 1
    print(f"scenario {name}: ok")
    return 0


def run_view(args: argparse.Namespace) -> int:
    """Serve the step-through viewer until interrupted (needs aiohttp, a pyetcd dependency)."""
    import asyncio

    from raft.sim.viewer import DEFAULT_VIEW_PORT, RunChoice, serve

    choice = RunChoice(scenario=args.scenario, seed=args.seed if args.seed is not None else 0,
                       steps=args.steps, nodes=args.nodes, driver=args.driver)
    try:
        asyncio.run(serve(choice, args.view_port if args.view_port is not None else DEFAULT_VIEW_PORT))
    except KeyboardInterrupt:
        pass
    except OSError as err:
        print(f"cannot serve the view: {err}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.view_port is not None and not args.view:
        print("--view-port needs --view", file=sys.stderr)
        return 2
    if args.view:
        if args.scenario is None and args.seed is None:
            print("--view needs --scenario NAME or --seed N", file=sys.stderr)
            return 2
        return run_view(args)
    if args.scenario is not None:
        return run_scenario(args.scenario, args.trace, args.core_log)
    seeds = [args.seed] if args.seed is not None else list(range(args.start, args.start + args.seeds))
    failures: list[SimResult] = []
    began = time.monotonic()
    ticks = 0
    totals: dict[str, int] = {}
    n = 0
    for n, seed in enumerate(seeds, 1):
        trace = Trace(enabled=args.trace, out=sys.stdout if args.trace else None, core_lines=args.core_log)
        if args.trace:
            print(f"=== seed {seed}: {args.steps} steps, {args.nodes} members ===")
        result = run_seed(seed, steps=args.steps, nodes=args.nodes, check_liveness=args.liveness, trace=trace,
                          cluster_type=DrivenCluster if args.driver else Cluster)
        ticks += result.ticks
        for key, value in result.stats.items():
            totals[key] = totals.get(key, 0) + value
        if not result.ok:
            failures.append(result)
            print(f"seed {seed}: VIOLATION after {result.events} events, tick {result.ticks}: "
                  f"{result.violation}")
            print(f"  replay: {replay_command(seed, args.steps, args.nodes, args.liveness, args.driver)}")
            if len(failures) >= args.max_failures:
                print(f"stopping after {len(failures)} failing seeds")
                break
        elif args.trace:
            stats = ", ".join(f"{k}={v}" for k, v in sorted(result.stats.items()))
            print(f"=== seed {seed}: ok after {result.ticks} ticks ({stats}) ===")
        if len(seeds) > 1 and (n % 100 == 0 or n == len(seeds)):
            print(f"  {n}/{len(seeds)} schedules, {len(failures)} violations, "
                  f"{time.monotonic() - began:.1f}s", flush=True)
    elapsed = time.monotonic() - began
    if len(seeds) > 1:
        print("  totals: " + ", ".join(f"{k}={v}" for k, v in sorted(totals.items())))
    print(f"simulated {n} schedules: {len(failures)} violations ({ticks} ticks, {elapsed:.1f}s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
