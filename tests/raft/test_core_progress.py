"""Per-follower Progress (probe / replicate / snapshot) and the Inflights window."""

from __future__ import annotations

import pytest

from raft.core.progress import Inflights, Progress, ProgressState


def test_inflights_fill_up_and_pause() -> None:
    inflights = Inflights(3)
    for last in (5, 7, 9):
        assert not inflights.full()
        inflights.add(last)
    assert inflights.full()
    with pytest.raises(OverflowError):
        inflights.add(11)


def test_inflights_free_everything_acknowledged() -> None:
    inflights = Inflights(10)
    for last in (5, 7, 9, 11):
        inflights.add(last)
    inflights.free_le(8)
    assert len(inflights) == 2
    inflights.free_le(100)
    assert len(inflights) == 0


def test_inflights_free_first_one_lets_one_more_through() -> None:
    inflights = Inflights(2)
    inflights.add(1)
    inflights.add(2)
    inflights.free_first_one()
    assert not inflights.full()
    assert len(inflights) == 1


def test_probe_sends_one_message_at_a_time() -> None:
    pr = Progress(match=0, next_index=5, max_inflight=4)
    assert pr.state is ProgressState.PROBE
    assert not pr.is_paused()
    pr.probe_sent = True
    assert pr.is_paused()
    # Any acknowledgement resumes it.
    assert pr.maybe_update(4)
    assert not pr.is_paused()
    assert (pr.match, pr.next) == (4, 5)


def test_replicate_is_paused_only_by_a_full_window() -> None:
    pr = Progress(match=4, next_index=5, max_inflight=2)
    pr.become_replicate()
    pr.optimistic_update(6)
    pr.inflights.add(6)
    assert not pr.is_paused()
    pr.optimistic_update(8)
    pr.inflights.add(8)
    assert pr.is_paused()
    assert pr.next == 9


def test_snapshot_state_pauses_until_the_snapshot_is_installed() -> None:
    pr = Progress(match=3, next_index=4, max_inflight=4)
    pr.become_snapshot(20)
    assert pr.is_paused()
    assert pr.pending_snapshot == 20
    # Back to probing continues after the snapshot, not from the old match.
    pr.become_probe()
    assert pr.state is ProgressState.PROBE
    assert pr.next == 21


def test_stale_acknowledgement_changes_nothing() -> None:
    pr = Progress(match=7, next_index=8, max_inflight=4)
    assert not pr.maybe_update(5)
    assert (pr.match, pr.next) == (7, 8)


def test_rejection_in_replicate_falls_back_to_match_plus_one() -> None:
    pr = Progress(match=5, next_index=10, max_inflight=4)
    pr.become_replicate()
    pr.next = 10
    assert pr.maybe_decrease_to(9, match_hint=2)
    assert pr.next == 6


def test_rejection_at_or_below_match_is_stale() -> None:
    pr = Progress(match=5, next_index=10, max_inflight=4)
    pr.become_replicate()
    assert not pr.maybe_decrease_to(5, match_hint=0)


def test_rejection_in_probe_uses_the_hint() -> None:
    pr = Progress(match=0, next_index=10, max_inflight=4)
    pr.probe_sent = True
    assert pr.maybe_decrease_to(9, match_hint=3)
    assert pr.next == 4
    assert not pr.probe_sent


def test_rejection_in_probe_for_another_index_is_stale() -> None:
    pr = Progress(match=0, next_index=10, max_inflight=4)
    assert not pr.maybe_decrease_to(7, match_hint=3)
    assert pr.next == 10


def test_rejection_hint_never_moves_next_below_one() -> None:
    pr = Progress(match=0, next_index=2, max_inflight=4)
    assert pr.maybe_decrease_to(1, match_hint=0)
    assert pr.next == 1
