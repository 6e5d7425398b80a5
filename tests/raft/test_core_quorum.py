"""Majority arithmetic: commit index of a quorum and vote tallies."""

from __future__ import annotations

from raft.core.quorum import VoteResult, committed_index, majority, vote_result


def test_majority_is_more_than_half() -> None:
    assert [majority(n) for n in range(1, 8)] == [1, 2, 2, 3, 3, 4, 4]


def test_committed_index_is_the_highest_index_a_majority_holds() -> None:
    assert committed_index({1, 2, 3}, {1: 9, 2: 5, 3: 7}) == 7
    assert committed_index({1, 2, 3, 4}, {1: 9, 2: 5, 3: 7, 4: 1}) == 5
    assert committed_index({1, 2, 3, 4, 5}, {1: 1, 2: 2, 3: 3, 4: 4, 5: 5}) == 3


def test_committed_index_counts_a_voter_without_progress_as_zero() -> None:
    assert committed_index({1, 2, 3}, {1: 9, 2: 9}) == 9
    assert committed_index({1, 2, 3}, {1: 9}) == 0


def test_committed_index_ignores_non_voters() -> None:
    # A learner's match (member 4) never counts.
    assert committed_index({1, 2, 3}, {1: 9, 2: 1, 3: 1, 4: 9}) == 1


def test_single_voter_commits_its_own_index() -> None:
    assert committed_index({1}, {1: 42}) == 42


def test_vote_is_won_by_a_majority_of_grants() -> None:
    assert vote_result({1, 2, 3}, {1: True, 2: True}) is VoteResult.WON
    assert vote_result({1, 2, 3, 4}, {1: True, 2: True}) is VoteResult.PENDING
    assert vote_result({1, 2, 3, 4}, {1: True, 2: True, 3: True}) is VoteResult.WON


def test_vote_is_lost_once_a_majority_can_no_longer_be_reached() -> None:
    assert vote_result({1, 2, 3}, {1: True, 2: False}) is VoteResult.PENDING
    assert vote_result({1, 2, 3}, {1: True, 2: False, 3: False}) is VoteResult.LOST
    # With four voters three grants are needed, so two rejections already decide it.
    assert vote_result({1, 2, 3, 4}, {1: False}) is VoteResult.PENDING
    assert vote_result({1, 2, 3, 4}, {1: False, 2: False}) is VoteResult.LOST


def test_votes_of_non_voters_do_not_count() -> None:
    assert vote_result({1, 2, 3}, {1: True, 4: True, 5: True}) is VoteResult.PENDING
