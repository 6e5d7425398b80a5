"""The end-of-run checks catch what they are for: lost writes, diverging members, watch gaps, split leaders."""

from __future__ import annotations

from tests.chaos import checks
from tests.chaos.history import INFO, OK, History, OpRecord, StatusSample, WatchEvent
from tests.chaos.linearizability import CAS, DELETE, GET, PUT, Verdict, check_history


def event(revision: int, key: str = "/chaos/r/0-0", value: str = "v") -> WatchEvent:
    return WatchEvent(revision, key, "PUT", value, revision, revision, 1)


def write(index: int, f: str, revision: int, value: str | None = None, result: bool | None = None,
          status: str = OK) -> OpRecord:
    return OpRecord(index, 0, "/chaos/r/0-0", f, 0.0, 0, value=value, ret=1.0, status=status, result=result,
                    revision=revision)


def test_only_acknowledged_effective_writes_must_be_found_on_members() -> None:
    assert checks.acknowledged_writes(write(0, PUT, 5, "a"))
    assert checks.acknowledged_writes(write(1, CAS, 6, "b", result=True))
    assert not checks.acknowledged_writes(write(2, CAS, 6, "c", result=False))
    assert not checks.acknowledged_writes(write(3, DELETE, 6, result=False))
    assert not checks.acknowledged_writes(write(4, PUT, 0, "d", status=INFO))
    assert not checks.acknowledged_writes(write(5, GET, 7))


def test_a_member_missing_an_acknowledged_write_fails_the_check() -> None:
    ops = [write(0, PUT, 5, "a"), write(1, DELETE, 6, result=True)]
    good = [checks.ReadBack(m, 0, "a", 5) for m in range(2)] + [checks.ReadBack(m, 1, None, 0) for m in range(2)]
    assert checks.writes_on_every_member(ops, good, 2).ok
    lost = [r for r in good if (r.member, r.op_index) != (1, 0)] + [checks.ReadBack(1, 0, None, 0)]
    result = checks.writes_on_every_member(ops, lost, 2)
    assert not result.ok and "m1: #0" in result.detail
    moved = [r for r in good if (r.member, r.op_index) != (0, 0)] + [checks.ReadBack(0, 0, "a", 9)]
    assert not checks.writes_on_every_member(ops, moved, 2).ok


def test_hashes_must_agree_at_the_requested_revision() -> None:
    assert checks.hashes_agree({0: (7, -1, 10), 1: (7, -1, 10)}, 10, 2).ok
    assert not checks.hashes_agree({0: (7, -1, 10), 1: (8, -1, 10)}, 10, 2).ok
    assert not checks.hashes_agree({0: (7, -1, 9), 1: (7, -1, 9)}, 10, 2).ok
    # Members whose stores have moved past the barrier still hash it alike.
    assert checks.hashes_agree({0: (7, -1, 10), 1: (7, -1, 12)}, 10, 2).ok
    assert not checks.hashes_agree({0: (7, -1, 10), 1: (7, 3, 12)}, 10, 2).ok
    silent = checks.hashes_agree({0: (7, -1, 10)}, 10, 2)
    assert not silent.ok and "no answer from m1" in silent.detail


def test_member_histories_must_be_identical_and_have_one_event_per_revision() -> None:
    full = [event(r) for r in range(2, 6)]
    assert checks.member_histories_agree({0: full, 1: list(full)}, 2, 5).ok
    gap = [e for e in full if e.revision != 4]
    assert not checks.member_histories_agree({0: gap, 1: gap}, 2, 5).ok
    other = [*full[:2], event(4, value="other"), full[3]]
    result = checks.member_histories_agree({0: full, 1: other}, 2, 5)
    assert not result.ok and "m1 differs from m0 at event 2" in result.detail


def test_a_watcher_that_loses_repeats_or_reorders_an_event_is_caught() -> None:
    reference = [event(r) for r in range(1, 8)]
    assert checks.watchers_saw_everything({0: list(reference)}, reference, 1, {0: 3}).ok
    assert checks.watchers_saw_everything({0: reference[2:]}, reference, 3, {0: 0}).ok
    lost = reference[:3] + reference[4:]
    repeated = reference[:4] + reference[3:]
    reordered = [reference[1], reference[0], *reference[2:]]
    for bad in (lost, repeated, reordered):
        assert not checks.watchers_saw_everything({0: bad}, reference, 1, {0: 1}).ok
    result = checks.watchers_saw_everything({0: lost}, reference, 1, {0: 1})
    assert "missing [4]" in result.detail


def test_two_leaders_reported_in_one_term_break_election_safety() -> None:
    samples = [StatusSample(0.0, 0, 1, 3, 1), StatusSample(0.1, 1, 2, 3, 1), StatusSample(0.2, 2, 3, 4, 0),
               StatusSample(0.3, 2, 3, 4, 2)]
    assert checks.one_leader_per_term(samples).ok
    split = [*samples, StatusSample(0.4, 1, 2, 3, 2)]
    result = checks.one_leader_per_term(split)
    assert not result.ok and "term 3" in result.detail


def test_only_reads_that_failed_drop_out_of_the_checked_history() -> None:
    history = History()
    read = history.invoke(0, "k", GET, 0)
    history.complete(read, "fail", error="UNAVAILABLE")
    lost_write = history.invoke(0, "k", PUT, 0, value="a")
    history.complete(lost_write, INFO, error="DEADLINE_EXCEEDED")
    never_returned = history.invoke(1, "k", GET, 0)
    done = history.invoke(2, "k", GET, 0)
    history.complete(done, OK, result="a")
    operations = history.operations()
    assert [o.index for o in operations] == [lost_write.index, done.index]
    assert operations[0].ret is None  # open-ended: may take effect any time later
    assert never_returned.operation() is None
    verdict = checks.linearizability(check_history(operations))
    assert verdict.ok and Verdict.LINEARIZABLE.value in verdict.detail
