"""The simulator running the production driver (raft/node.py) on a virtual clock."""

from __future__ import annotations

import pytest

from raft.core import Ready
from raft.sim import __main__ as cli
from raft.sim.driven import DrivenCluster
from raft.sim.schedule import SimResult, run_seed
from raft.sim.trace import Trace

# CI runs these many seeded schedules against the real driver; `make sim` runs more.
TOTAL_SEEDS = 100
SEED_CHUNK = 25
SEED_STEPS = 400


def _failures_report(results: list[SimResult]) -> str:
    return "\n".join(
        f"seed {r.seed}: {r.violation}\n  replay: {cli.replay_command(r.seed, SEED_STEPS, 3, True, driver=True)}"
        for r in results
    )


@pytest.mark.parametrize("start", range(0, TOTAL_SEEDS, SEED_CHUNK))
def test_seeded_schedules_on_the_production_driver_break_no_raft_property(start: int) -> None:
    results = [run_seed(seed, steps=SEED_STEPS, cluster_type=DrivenCluster)
               for seed in range(start, start + SEED_CHUNK)]
    failed = [r for r in results if not r.ok]
    assert not failed, _failures_report(failed)
    totals: dict[str, int] = {}
    for r in results:
        for key, value in r.stats.items():
            totals[key] = totals.get(key, 0) + value
    # The schedules reach the delicate paths, not just elections.
    assert totals.get("conf changes applied: ADD_NODE", 0) > 0
    assert totals.get("conf changes applied: REMOVE_NODE", 0) > 0
    assert totals.get("snapshots installed", 0) > 0
    assert totals.get("restarts", 0) > 0
    assert totals.get("transfers", 0) > 0


def test_a_seed_on_the_production_driver_replays_exactly() -> None:
    runs = [run_seed(31, steps=300, cluster_type=DrivenCluster, trace=Trace(enabled=True)) for _ in range(2)]
    first, second = runs
    assert first.ok and second.ok
    assert first.trace is not None and second.trace is not None
    assert len(first.trace.lines) > 100
    assert first.trace.text() == second.trace.text()
    assert first.stats == second.stats


def test_simulator_catches_a_driver_that_advances_past_an_unapplied_conf_change(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Today's driver, had it never waited for the application: advance at once after queueing.
    monkeypatch.setattr(Ready, "commits_conf_change", property(lambda self: False))
    results = [run_seed(seed, steps=SEED_STEPS, cluster_type=DrivenCluster) for seed in range(10)]
    violations = [r.violation for r in results if r.violation is not None]
    assert violations
    assert all(v.rule == "ready contract" for v in violations)
