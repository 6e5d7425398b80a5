"""What the leader knows about each follower's log, and how fast it may send to it.

A Progress is in one of three states (etcd's tracker): PROBE sends one APP at a time
until the follower's match is found, REPLICATE streams APPs optimistically within the
Inflights window, SNAPSHOT waits for an InstallSnapshot (§7) to land.
"""

from __future__ import annotations

import enum
from collections import deque


class ProgressState(enum.Enum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


class Inflights:
    """A window of APP messages sent but not yet acknowledged, by the last index each carried.

    Flow control: once `size` APPs are unacknowledged the follower is paused.
    """

    __slots__ = ("size", "_last_indexes")

    def __init__(self, size: int) -> None:
        if size <= 0:
            raise ValueError("inflights size must be positive")
        self.size = size
        self._last_indexes: deque[int] = deque()

    def __len__(self) -> int:
        return len(self._last_indexes)

    def add(self, last_index: int) -> None:
        """Record an APP whose last entry is `last_index`; indexes must increase."""
        if self.full():
            raise OverflowError("cannot add to a full inflights window")
        self._last_indexes.append(last_index)

    def free_le(self, index: int) -> None:
        """Forget every APP acknowledged by an APP_RESP for `index` (all those ending at or below it)."""
        q = self._last_indexes
        while q and q[0] <= index:
            q.popleft()

    def free_first_one(self) -> None:
        """Forget the oldest APP: a heartbeat answer shows the follower is alive, so let one more through."""
        if self._last_indexes:
            self._last_indexes.popleft()

    def full(self) -> bool:
        return len(self._last_indexes) >= self.size

    def reset(self) -> None:
        self._last_indexes.clear()


class Progress:
    """The leader's view of one follower (Figure 2: nextIndex, matchIndex), plus flow control."""

    __slots__ = ("match", "next", "state", "pending_snapshot", "recent_active", "probe_sent",
                 "inflights", "is_learner")

    def __init__(self, match: int, next_index: int, max_inflight: int, is_learner: bool = False,
                 recent_active: bool = False) -> None:
        self.match = match
        self.next = next_index
        self.state = ProgressState.PROBE
        self.pending_snapshot = 0
        # Set whenever the follower answers; CheckQuorum clears it every election timeout (thesis §6.2).
        self.recent_active = recent_active
        # In PROBE, one APP is in flight and we wait for its answer (or a heartbeat) before the next.
        self.probe_sent = False
        self.inflights = Inflights(max_inflight)
        self.is_learner = is_learner

    def __repr__(self) -> str:
        return (f"Progress(state={self.state.value}, match={self.match}, next={self.next}, "
                f"pending_snapshot={self.pending_snapshot}, inflights={len(self.inflights)})")

    def _reset_state(self, state: ProgressState) -> None:
        self.probe_sent = False
        self.pending_snapshot = 0
        self.state = state
        self.inflights.reset()

    def become_probe(self) -> None:
        """Back off to one APP at a time, resuming after a snapshot if one was pending."""
        if self.state is ProgressState.SNAPSHOT:
            pending = self.pending_snapshot
            self._reset_state(ProgressState.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset_state(ProgressState.PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        """The follower's match is known: stream entries optimistically."""
        self._reset_state(ProgressState.REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshot_index: int) -> None:
        """Stop sending APPs until the snapshot at `snapshot_index` is installed (§7)."""
        self._reset_state(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def maybe_update(self, index: int) -> bool:
        """Apply a successful APP_RESP for `index`; False when it is stale (already known)."""
        updated = False
        if self.match < index:
            self.match = index
            updated = True
            self.probe_sent = False
        self.next = max(self.next, index + 1)
        return updated

    def optimistic_update(self, last_sent: int) -> None:
        """In REPLICATE, assume the APP ending at `last_sent` will succeed."""
        self.next = last_sent + 1

    def maybe_decrease_to(self, rejected: int, match_hint: int) -> bool:
        """Apply a rejected APP_RESP for `rejected`; False when the rejection is stale.

        `match_hint` is where the follower suggests the logs may agree (fast backtracking).
        """
        if self.state is ProgressState.REPLICATE:
            # A rejection at or below match must come from an old, reordered APP.
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        # In PROBE only the answer to the last probe (at next - 1) counts.
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), 1)
        self.probe_sent = False
        return True

    def is_paused(self) -> bool:
        """Whether the leader must hold back APPs to this follower for now."""
        if self.state is ProgressState.PROBE:
            return self.probe_sent
        if self.state is ProgressState.REPLICATE:
            return self.inflights.full()
        return True
