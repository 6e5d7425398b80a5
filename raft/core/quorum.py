"""Majority arithmetic: the commit index a quorum has reached, and the outcome of a vote.

Only simple majorities are needed: membership changes one member at a time (thesis §4.1),
so there is never a joint configuration.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping


class VoteResult(enum.Enum):
    """Where a tally stands: still open, won by a majority, or lost for good."""

    PENDING = "pending"
    LOST = "lost"
    WON = "won"


def majority(voter_count: int) -> int:
    """The smallest number of voters that forms a quorum."""
    return voter_count // 2 + 1


def committed_index(voters: Collection[int], match: Mapping[int, int]) -> int:
    """The largest index present on a majority of `voters` (§5.3, §5.4.2 is the caller's job).

    A voter missing from `match` counts as having nothing (index 0).
    """
    if not voters:
        return 0
    acked = sorted((match.get(v, 0) for v in voters), reverse=True)
    return acked[majority(len(acked)) - 1]


def vote_result(voters: Collection[int], votes: Mapping[int, bool]) -> VoteResult:
    """Tally `votes` (voter -> granted) over `voters`; absent voters have not answered yet."""
    if not voters:
        # An empty configuration wins every vote by convention, as an empty set's quorum is empty.
        return VoteResult.WON
    granted = rejected = 0
    for v in voters:
        answer = votes.get(v)
        if answer is None:
            continue
        if answer:
            granted += 1
        else:
            rejected += 1
    need = majority(len(voters))
    if granted >= need:
        return VoteResult.WON
    if len(voters) - rejected >= need:
        return VoteResult.PENDING
    return VoteResult.LOST
