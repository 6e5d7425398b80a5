"""A snapshot of a member's Raft state for the application, metrics and tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from raft.core.progress import ProgressState
from raft.core.types import NO_NODE, ConfState, StateRole


@dataclass(frozen=True, slots=True)
class ProgressStatus:
    """The leader's view of one member's log."""

    match: int
    next: int
    state: ProgressState
    recent_active: bool
    is_learner: bool = False
    pending_snapshot: int = 0
    inflight: int = 0


@dataclass(frozen=True, slots=True)
class Status:
    """Term, vote, commit and role of a member; `progress` is filled on the leader only."""

    id: int
    term: int
    vote: int
    commit: int
    applied: int
    role: StateRole
    leader_id: int = NO_NODE
    lead_transferee: int = NO_NODE
    conf_state: ConfState = field(default_factory=ConfState)
    progress: dict[int, ProgressStatus] = field(default_factory=dict)
    last_index: int = 0
