"""Role transitions kept as data: (role, event) -> next role, each with the rule it implements.

The core looks up every role change here, so this table is the whole truth about
who may become what; `describe_role_transitions()` prints it for learners.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from raft.core.types import StateRole

FOLLOWER = StateRole.FOLLOWER
PRE_CANDIDATE = StateRole.PRE_CANDIDATE
CANDIDATE = StateRole.CANDIDATE
LEADER = StateRole.LEADER


class RoleEvent(enum.Enum):
    """What makes a member change role."""

    ELECTION_TIMEOUT = "election timeout (or campaign), pre-vote off"
    PRE_VOTE_TIMEOUT = "election timeout (or campaign), pre-vote on"
    TIMEOUT_NOW = "TIMEOUT_NOW from the leader"
    PRE_VOTE_WON = "pre-votes from a quorum"
    VOTE_WON = "votes from a quorum"
    VOTE_LOST = "rejections from a quorum"
    HEARD_FROM_LEADER = "APP/HEARTBEAT/SNAP from the leader of this term"
    HIGHER_TERM = "message with a higher term"
    QUORUM_LOST = "no quorum heard from in an election timeout"
    REMOVED = "own removal applied"


@dataclass(frozen=True, slots=True)
class Transition:
    role: StateRole
    event: RoleEvent
    next_role: StateRole
    rule: str


TRANSITIONS: tuple[Transition, ...] = (
    Transition(FOLLOWER, RoleEvent.ELECTION_TIMEOUT, CANDIDATE, "§5.2"),
    Transition(FOLLOWER, RoleEvent.PRE_VOTE_TIMEOUT, PRE_CANDIDATE, "thesis §9.6"),
    Transition(FOLLOWER, RoleEvent.TIMEOUT_NOW, CANDIDATE, "thesis §3.10"),
    Transition(FOLLOWER, RoleEvent.HIGHER_TERM, FOLLOWER, "§5.1"),
    Transition(PRE_CANDIDATE, RoleEvent.PRE_VOTE_WON, CANDIDATE, "thesis §9.6"),
    Transition(PRE_CANDIDATE, RoleEvent.PRE_VOTE_TIMEOUT, PRE_CANDIDATE, "thesis §9.6"),
    Transition(PRE_CANDIDATE, RoleEvent.VOTE_LOST, FOLLOWER, "thesis §9.6"),
    Transition(PRE_CANDIDATE, RoleEvent.HEARD_FROM_LEADER, FOLLOWER, "§5.2"),
    Transition(PRE_CANDIDATE, RoleEvent.HIGHER_TERM, FOLLOWER, "§5.1"),
    Transition(CANDIDATE, RoleEvent.VOTE_WON, LEADER, "§5.2"),
    Transition(CANDIDATE, RoleEvent.ELECTION_TIMEOUT, CANDIDATE, "§5.2"),
    Transition(CANDIDATE, RoleEvent.PRE_VOTE_TIMEOUT, PRE_CANDIDATE, "thesis §9.6"),
    Transition(CANDIDATE, RoleEvent.VOTE_LOST, FOLLOWER, "§5.2"),
    Transition(CANDIDATE, RoleEvent.HEARD_FROM_LEADER, FOLLOWER, "§5.2"),
    Transition(CANDIDATE, RoleEvent.HIGHER_TERM, FOLLOWER, "§5.1"),
    Transition(LEADER, RoleEvent.HIGHER_TERM, FOLLOWER, "§5.1"),
    Transition(LEADER, RoleEvent.QUORUM_LOST, FOLLOWER, "thesis §6.2"),
    Transition(LEADER, RoleEvent.REMOVED, FOLLOWER, "thesis §4.2.2"),
)

ROLE_TRANSITIONS: dict[StateRole, dict[RoleEvent, StateRole]] = {}
for _t in TRANSITIONS:
    ROLE_TRANSITIONS.setdefault(_t.role, {})[_t.event] = _t.next_role
del _t


def next_role(role: StateRole, event: RoleEvent) -> StateRole | None:
    """The role `event` leads to from `role`, or None when the table has no such transition."""
    return ROLE_TRANSITIONS.get(role, {}).get(event)


def describe_role_transitions() -> str:
    """The table as text, one transition a line: `follower --[event]--> candidate  (§5.2)`."""
    width = max(len(t.event.value) for t in TRANSITIONS)
    lines = []
    for t in TRANSITIONS:
        lines.append(f"{t.role.value:>13} --[{t.event.value:<{width}}]--> {t.next_role.value:<13} ({t.rule})")
    return "\n".join(lines)
