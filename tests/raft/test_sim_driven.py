"""The simulator running the production driver (raft/node.py) on a virtual clock."""

from __future__ import annotations

import pytest

from raft.core import Ready
from raft.sim.cluster import CrashPoint
from raft.sim.driven import DrivenCluster
from raft.sim.schedule import (
    AddLearner,
    AddVoter,
    Crash,
    Event,
    Heal,
    IsolateLeader,
    Partition,
    PromoteLearner,
    Propose,
    Read,
    RemoveLeader,
    Restart,
    TakeSnapshot,
    Tick,
    TransferLeader,
    run_events,
    run_seed,
)
from raft.sim.trace import Trace
from tests.raft.test_sim import SEED_STEPS, failures_report, forget_votes


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


def test_five_member_schedules_on_the_production_driver_break_no_raft_property() -> None:
    results = [run_seed(seed, steps=SEED_STEPS, nodes=5, cluster_type=DrivenCluster) for seed in range(10)]
    failed = [r for r in results if not r.ok]
    assert not failed, failures_report(failed, DrivenCluster)


# -- scripted schedules, as the core-only simulator plays them -----------------------------------


def _ticks(n: int) -> list[Tick]:
    return [Tick(1)] * n


@pytest.mark.parametrize("point", list(CrashPoint))
def test_driver_writes_survive_a_crash_at_each_point_of_the_ready_cycle(point: CrashPoint) -> None:
    events: list[Event] = [*_ticks(30), Propose(0), Propose(1), Crash(0, point), Propose(2), *_ticks(15),
                           Restart(0), *_ticks(30), Propose(0), *_ticks(10)]
    result = run_events(events, seed=int(point), cluster_type=DrivenCluster)
    assert result.ok, f"{point.name}: {result.violation}"
    assert result.stats.get("crashes") == 1 and result.stats.get("restarts") == 1


def test_driver_membership_grows_promotes_and_loses_its_leader() -> None:
    events: list[Event] = [*_ticks(30), AddVoter(), *_ticks(30), AddLearner(), *_ticks(30), PromoteLearner(0),
                           *_ticks(30), Propose(0), RemoveLeader(), *_ticks(60), Propose(0), *_ticks(20)]
    result = run_events(events, seed=3, cluster_type=DrivenCluster)
    assert result.ok, result.violation
    assert result.cluster is not None
    conf = result.cluster.latest_conf()
    assert len(conf.voters) == 4 and not conf.learners  # 3 + voter + promoted learner - old leader
    assert any(m.stopped for m in result.cluster.members.values())


def test_driver_laggard_catches_up_from_a_snapshot_and_leadership_moves() -> None:
    isolate_3 = Partition(mask=0b100)
    events: list[Event] = [*_ticks(30), isolate_3, *[e for i in range(12) for e in (Propose(i % 2), Tick(1))],
                           *_ticks(5), TakeSnapshot(0), TakeSnapshot(1), Heal(), *_ticks(40),
                           TransferLeader(2), *_ticks(20), Propose(2), *_ticks(10)]
    result = run_events(events, seed=11, cluster_type=DrivenCluster)
    assert result.ok, result.violation
    assert result.stats.get("snapshots installed", 0) >= 1
    assert result.stats.get("transfers", 0) == 1


def test_driver_reads_are_served_through_leader_isolation() -> None:
    # Messages take a little virtual time here, so the first reads get a tick before the cut.
    events: list[Event] = [*_ticks(30), Propose(0), *_ticks(3), Read(1), Read(2), Tick(1), IsolateLeader(),
                           Read(0), *_ticks(40), Propose(1), Read(1), *_ticks(10)]
    result = run_events(events, seed=5, cluster_type=DrivenCluster)
    assert result.ok, result.violation
    assert result.stats.get("reads served", 0) >= 2


def test_driver_simulation_catches_followers_that_vote_twice_in_one_term(monkeypatch: pytest.MonkeyPatch) -> None:
    forget_votes(monkeypatch)
    results = (run_seed(seed, steps=SEED_STEPS, cluster_type=DrivenCluster) for seed in range(300))
    failed = next((r for r in results if not r.ok), None)
    assert failed is not None and failed.violation is not None, "two votes per term went unnoticed"
    assert failed.violation.rule == "election safety"
