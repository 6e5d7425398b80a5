"""The simulator: seeded schedules keep Raft safe, the checker catches broken rules, traces teach."""

from __future__ import annotations

import random

import pytest

from raft.core import NO_NODE, ConfState, Entry, EntryType, MemoryStorage, Message, MessageType
from raft.core import log as core_log
from raft.core import raft as core_raft
from raft.sim import __main__ as cli
from raft.sim.app import AppliedEntry, AppState
from raft.sim.cluster import Cluster, CrashPoint
from raft.sim.driven import DrivenCluster
from raft.sim.invariants import ReadRequest, SafetyChecker, Violation
from raft.sim.network import FaultRates, Network
from raft.sim.scenarios import figure_8
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
    SimResult,
    TakeSnapshot,
    Tick,
    run_events,
    run_seed,
)
from raft.sim.trace import Trace

SEED_STEPS = 400
# CI runs this many seeded schedules on each cluster, in chunks so progress is visible; the
# production driver's runs cost more, so it gets fewer (`make sim` runs more of both).
SEEDED_RUNS: dict[type[Cluster], tuple[int, int]] = {Cluster: (2000, 100), DrivenCluster: (100, 25)}


def failures_report(results: list[SimResult], cluster_type: type[Cluster] = Cluster) -> str:
    """Each failing seed's violation and the command that replays it with a trace."""
    driver = cluster_type is DrivenCluster
    return "\n".join(
        f"seed {r.seed}: {r.violation}\n  replay: {cli.replay_command(r.seed, SEED_STEPS, 3, True, driver=driver)}"
        for r in results
    )


# -- thousands of seeded schedules ----------------------------------------------------------------


@pytest.mark.parametrize(("cluster_type", "start"), [
    pytest.param(kind, start, id=f"{kind.__name__}-{start}")
    for kind, (total, chunk) in SEEDED_RUNS.items() for start in range(0, total, chunk)])
def test_seeded_fault_schedules_break_no_raft_property(cluster_type: type[Cluster], start: int) -> None:
    chunk = SEEDED_RUNS[cluster_type][1]
    results = [run_seed(seed, steps=SEED_STEPS, cluster_type=cluster_type) for seed in range(start, start + chunk)]
    failed = [r for r in results if not r.ok]
    assert not failed, failures_report(failed, cluster_type)
    totals: dict[str, int] = {}
    for r in results:
        for key, value in r.stats.items():
            totals[key] = totals.get(key, 0) + value
    assert totals.get("leaders elected", 0) >= chunk
    # The schedules reach the delicate paths, not just elections.
    for delicate in ("conf changes applied: ADD_NODE", "conf changes applied: REMOVE_NODE",
                     "snapshots installed", "restarts", "transfers"):
        assert totals.get(delicate, 0) > 0, delicate


def test_five_member_schedules_break_no_raft_property() -> None:
    failed = [r for r in (run_seed(seed, steps=SEED_STEPS, nodes=5) for seed in range(20)) if not r.ok]
    assert not failed, failures_report(failed)


def test_same_seed_replays_the_same_run_with_or_without_a_trace() -> None:
    a, b = Trace(enabled=True), Trace(enabled=True, core_lines=True)
    first = run_seed(7, steps=SEED_STEPS, trace=a)
    again = run_seed(7, steps=SEED_STEPS, trace=b)
    quiet = run_seed(7, steps=SEED_STEPS)
    assert a.lines == [line for line in b.lines if "core:" not in line]
    assert len(a.lines) > 100
    assert first.stats == again.stats == quiet.stats and first.ticks == again.ticks == quiet.ticks


# -- scripted scenarios ---------------------------------------------------------------------------


def _ticks(n: int) -> list[Tick]:
    return [Tick(1)] * n


def test_writes_survive_crashes_at_every_point_of_the_ready_cycle() -> None:
    for point in CrashPoint:
        events: list[Event] = [*_ticks(30), Propose(0), Propose(1), Crash(0, point), Propose(2), *_ticks(15),
                  Restart(0), *_ticks(30), Propose(0), *_ticks(10)]
        result = run_events(events, seed=int(point))
        assert result.ok, f"{point.name}: {result.violation}"
        assert result.stats.get("crashes") == 1 and result.stats.get("restarts") == 1


def test_membership_grows_promotes_and_loses_its_leader() -> None:
    events: list[Event] = [*_ticks(30), AddVoter(), *_ticks(30), AddLearner(), *_ticks(30), PromoteLearner(0),
              *_ticks(30), Propose(0), RemoveLeader(), *_ticks(60), Propose(0), *_ticks(20)]
    result = run_events(events, seed=3)
    assert result.ok, result.violation
    assert result.cluster is not None
    conf = result.cluster.latest_conf()
    assert len(conf.voters) == 4 and not conf.learners  # 3 + voter + promoted learner - old leader
    assert any(m.stopped for m in result.cluster.members.values())


def test_laggard_catches_up_from_a_snapshot() -> None:
    isolate_3 = Partition(mask=0b100)
    events: list[Event] = [*_ticks(30), isolate_3, *[e for i in range(12) for e in (Propose(i % 2), Tick(1))],
              *_ticks(5), TakeSnapshot(0), TakeSnapshot(1), Heal(), *_ticks(40)]
    result = run_events(events, seed=11)
    assert result.ok, result.violation
    assert result.stats.get("snapshots installed", 0) >= 1


def test_reads_are_served_through_leader_isolation() -> None:
    events: list[Event] = [*_ticks(30), Propose(0), *_ticks(3), Read(1), Read(2), IsolateLeader(), Read(0),
                           *_ticks(40), Propose(1), Read(1), *_ticks(10)]
    result = run_events(events, seed=5)
    assert result.ok, result.violation
    assert result.stats.get("reads served", 0) >= 2


# -- the checker catches broken rules -------------------------------------------------------------


def test_checker_reports_two_leaders_in_one_term() -> None:
    checker = SafetyChecker()
    checker.on_leader(1, term=4, storage=MemoryStorage())
    with pytest.raises(Violation, match="election safety"):
        checker.on_leader(2, term=4, storage=MemoryStorage())


def test_checker_reports_same_index_and_term_with_different_data() -> None:
    checker = SafetyChecker()
    a, b = MemoryStorage(), MemoryStorage()
    ea, eb = Entry(term=1, index=1, data=b"x"), Entry(term=1, index=1, data=b"y")
    a.append([ea])
    b.append([eb])
    checker.on_persisted(1, (ea,), a)
    with pytest.raises(Violation, match="log matching"):
        checker.on_persisted(2, (eb,), b)


def test_checker_reports_a_leader_missing_a_committed_entry() -> None:
    checker = SafetyChecker()
    checker.on_committed(1, member_term=2, entries=(Entry(term=2, index=1, data=b"x"),), leaders=[])
    stale = MemoryStorage()
    stale.append([Entry(term=1, index=1, data=b"old")])
    with pytest.raises(Violation, match="leader completeness"):
        checker.on_leader(3, term=3, storage=stale)


def test_checker_reports_members_applying_different_entries_at_one_index() -> None:
    checker = SafetyChecker()
    checker.on_applied(1, AppState(), AppliedEntry(1, EntryType.NORMAL, b"x"))
    with pytest.raises(Violation, match="state machine safety"):
        checker.on_applied(2, AppState(), AppliedEntry(1, EntryType.NORMAL, b"y"))


def test_checker_reports_a_stale_read() -> None:
    checker = SafetyChecker()
    read = ReadRequest(b"r1", member=2, incarnation=1, started_tick=10, min_index=7)
    with pytest.raises(Violation, match="read linearizability"):
        checker.on_read_index(read, 6)
    state = AppState(applied_index=5, conf_state=ConfState(voters=(1,)))
    with pytest.raises(Violation, match="read linearizability"):
        checker.on_read_served(read, state)


def _first_failure(steps: int, seeds: range) -> SimResult | None:
    return next((r for r in (run_seed(seed, steps=steps) for seed in seeds) if not r.ok), None)


def test_simulation_catches_followers_that_vote_twice_in_one_term(monkeypatch: pytest.MonkeyPatch) -> None:
    forget_votes(monkeypatch)
    failed = _first_failure(SEED_STEPS, range(300))
    assert failed is not None and failed.violation is not None, "two votes per term went unnoticed"
    assert failed.violation.rule == "election safety"


def test_simulation_catches_voting_for_a_less_up_to_date_log(monkeypatch: pytest.MonkeyPatch) -> None:
    # §5.4.1 election restriction switched off: a candidate missing committed entries can win.
    monkeypatch.setattr(core_log.RaftLog, "is_up_to_date", lambda self, index, term: True)
    failed = _first_failure(SEED_STEPS, range(300))
    assert failed is not None and failed.violation is not None, "a broken election restriction went unnoticed"
    assert failed.violation.rule in {"leader completeness", "state machine safety"}


def test_simulation_catches_read_index_answered_without_confirming_leadership(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # thesis §6.4: a leader must hear from a quorum before answering; a deposed one would serve stale reads.
    def answer_at_once(self: core_raft.Raft, m: Message) -> None:
        self._answer_read_index(m, self.log.committed)

    monkeypatch.setattr(core_raft.Raft, "_leader_read_index", answer_at_once)
    failed = _first_failure(SEED_STEPS, range(1000))
    assert failed is not None and failed.violation is not None, "stale reads went unnoticed"
    assert failed.violation.rule == "read linearizability"


def test_figure_8_old_term_entry_on_a_majority_is_overwritten_safely() -> None:
    cluster = figure_8()
    n1, n3 = cluster.members[1], cluster.members[3]
    assert n3.storage.term(5) == 3  # n2's entry replaced the old-term one
    assert n1.app.applied_index == 4  # n1 never applied 5@2: it was never committed


def test_simulation_catches_committing_old_term_entries_by_counting_replicas(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # §5.4.2 switched off: the leader commits whatever a quorum holds, whatever its term.
    def commit_any_term(self: core_log.RaftLog, index: int, term: int) -> bool:
        if index > self.committed:
            self.commit_to(index)
            return True
        return False

    monkeypatch.setattr(core_log.RaftLog, "maybe_commit", commit_any_term)
    with pytest.raises(Violation, match="leader completeness"):
        figure_8()


def test_cli_reports_the_replay_command_of_a_failing_seed(monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    forget_votes(monkeypatch)
    code = cli.main(["--seeds", "300", "--steps", str(SEED_STEPS), "--max-failures", "1"])
    out = capsys.readouterr().out
    assert code == 1
    assert "replay: python -m raft.sim --seed " in out and f"--steps {SEED_STEPS}" in out
    assert "1 violations" in out


def forget_votes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make followers forget whom they voted for in the current term (§5.2 allows one vote per term)."""
    original = core_raft.Raft._handle_vote_request

    def forgetful(self: core_raft.Raft, m: Message) -> None:
        if m.type is MessageType.VOTE and m.term == self.term:
            self.vote = NO_NODE
        original(self, m)

    monkeypatch.setattr(core_raft.Raft, "_handle_vote_request", forgetful)


# -- network and trace ----------------------------------------------------------------------------


def _msg(src: int, dst: int) -> Message:
    return Message(MessageType.HEARTBEAT, to=dst, sender=src, term=1)


def test_network_partitions_cut_both_ways_and_one_way_cuts_only_one() -> None:
    net = Network(random.Random(1))
    net.partition([1], [2, 3])
    assert not net.link_open(1, 2) and not net.link_open(3, 1) and net.link_open(2, 3)
    net.heal()
    net.block(1, 2)
    assert not net.send(_msg(1, 2), now=0)
    assert net.send(_msg(2, 1), now=0)
    assert net.take_due(0) == [_msg(2, 1)]


def test_network_delays_duplicates_and_drops_by_seeded_chance() -> None:
    net = Network(random.Random(2))
    net.faults = FaultRates(duplicate=1.0, delay=1.0, max_delay=2)
    net.send(_msg(1, 2), now=0)
    assert net.take_due(0) == []
    assert net.take_due(2) == [_msg(1, 2), _msg(1, 2)]
    net.faults = FaultRates(drop=1.0)
    assert not net.send(_msg(1, 2), now=3)
    assert net.in_flight() == 0


def test_trace_narrates_elections_votes_and_applies() -> None:
    trace = Trace(enabled=True)
    result = run_events([*_ticks(30), Propose(0), *_ticks(5), IsolateLeader(), *_ticks(40), Heal(),
                         *_ticks(10)], seed=1, trace=trace)
    assert result.ok, result.violation
    text = trace.text()
    assert "becomes LEADER of term" in text
    assert "votes for" in text
    assert "applies" in text and "ISOLATE" in text


def test_cli_summarises_clean_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--seeds", "3", "--steps", "60"]) == 0
    assert "simulated 3 schedules: 0 violations" in capsys.readouterr().out


def test_cli_narrates_the_figure_8_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--scenario", "figure-8", "--trace"]) == 0
    out = capsys.readouterr().out
    assert "n3 votes for n1 in term 4" in out and "scenario figure-8: ok" in out
