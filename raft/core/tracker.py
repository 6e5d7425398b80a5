"""The leader's table of members: who votes, who learns, each one's Progress, and the votes of an election."""

from __future__ import annotations

from collections.abc import Iterator

from raft.core import quorum
from raft.core.progress import Progress
from raft.core.types import ConfState


class ProgressTracker:
    """Membership plus per-member Progress; learners replicate but never vote or count for quorum."""

    __slots__ = ("voters", "learners", "progress", "votes", "max_inflight", "_ids")

    def __init__(self, max_inflight: int) -> None:
        self.voters: set[int] = set()
        self.learners: set[int] = set()
        self.progress: dict[int, Progress] = {}
        self.votes: dict[int, bool] = {}
        self.max_inflight = max_inflight
        self._ids: list[int] = []

    def conf_state(self) -> ConfState:
        return ConfState(voters=tuple(sorted(self.voters)), learners=tuple(sorted(self.learners)))

    def ids(self) -> list[int]:
        """Every member (voters and learners) in id order, so broadcasts are deterministic."""
        return self._ids

    def items(self) -> Iterator[tuple[int, Progress]]:
        for member_id in self._ids:
            yield member_id, self.progress[member_id]

    def is_singleton(self) -> bool:
        return len(self.voters) == 1

    # -- membership -------------------------------------------------------------------------------------

    def add_voter(self, member_id: int, progress: Progress) -> None:
        self.learners.discard(member_id)
        self.voters.add(member_id)
        progress.is_learner = False
        self._set_progress(member_id, progress)

    def add_learner(self, member_id: int, progress: Progress) -> None:
        self.voters.discard(member_id)
        self.learners.add(member_id)
        progress.is_learner = True
        self._set_progress(member_id, progress)

    def remove(self, member_id: int) -> None:
        self.voters.discard(member_id)
        self.learners.discard(member_id)
        self.votes.pop(member_id, None)
        if self.progress.pop(member_id, None) is not None:
            self._ids.remove(member_id)

    def _set_progress(self, member_id: int, progress: Progress) -> None:
        if member_id not in self.progress:
            self._ids.append(member_id)
            self._ids.sort()
        self.progress[member_id] = progress

    # -- quorum questions -------------------------------------------------------------------------------

    def committed(self) -> int:
        """The largest index a majority of voters has in its log (§5.3)."""
        progress = self.progress
        return quorum.committed_index(self.voters, {v: progress[v].match for v in self.voters})

    def quorum_active(self) -> bool:
        """Whether a majority of voters was heard from recently (thesis §6.2 CheckQuorum)."""
        progress = self.progress
        return quorum.vote_result(self.voters, {v: progress[v].recent_active for v in self.voters}) \
            is quorum.VoteResult.WON

    def reset_votes(self) -> None:
        self.votes = {}

    def record_vote(self, member_id: int, granted: bool) -> None:
        """Only a member's first answer in an election counts."""
        self.votes.setdefault(member_id, granted)

    def tally_votes(self) -> tuple[int, int, quorum.VoteResult]:
        """(granted, rejected, result) of the votes received from voters."""
        granted = sum(1 for v in self.voters if self.votes.get(v) is True)
        rejected = sum(1 for v in self.voters if self.votes.get(v) is False)
        return granted, rejected, quorum.vote_result(self.voters, self.votes)
