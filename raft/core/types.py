"""The values that cross the boundary of the Raft core: messages in, a Ready out.

Everything here is plain data (frozen, slotted dataclasses) so that the core stays
sans-I/O: the driver, the transport, the durable log and the simulator all speak
in these types and nothing else.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

NO_NODE = 0
"""Member ID 0 means "nobody": no vote cast, no leader known."""


class StateRole(enum.Enum):
    """The role a member plays in its current term (§5.1, plus thesis §9.6 pre-candidate)."""

    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre-candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


class EntryType(enum.IntEnum):
    """NORMAL entries carry application data; CONF_CHANGE entries carry a membership change."""

    NORMAL = 0
    CONF_CHANGE = 1


class ConfChangeType(enum.IntEnum):
    """Membership changes, one at a time, as etcd 3.4 makes them (thesis §4.1)."""

    ADD_NODE = 0
    REMOVE_NODE = 1
    UPDATE_NODE = 2
    ADD_LEARNER_NODE = 3


class MessageType(enum.IntEnum):
    """Every message the core sends or accepts; the numbers are ours, stable on the wire."""

    HUP = 0  # local: start an election
    BEAT = 1  # local: leader sends heartbeats
    PROP = 2  # a proposal (local, or forwarded from a follower to the leader)
    APP = 3  # AppendEntries (§5.3)
    APP_RESP = 4
    VOTE = 5  # RequestVote (§5.2)
    VOTE_RESP = 6
    SNAP = 7  # InstallSnapshot (§7)
    HEARTBEAT = 8
    HEARTBEAT_RESP = 9
    UNREACHABLE = 10  # local: the transport could not reach a peer
    SNAP_STATUS = 11  # local: the transport reports how a snapshot send went
    CHECK_QUORUM = 12  # local: leader checks it heard from a quorum (thesis §6.2)
    TRANSFER_LEADER = 13  # leadership transfer request (thesis §3.10)
    TIMEOUT_NOW = 14  # tells the transferee to campaign at once (thesis §3.10)
    READ_INDEX = 15  # ReadIndex request (thesis §6.4)
    READ_INDEX_RESP = 16
    PRE_VOTE = 17  # thesis §9.6
    PRE_VOTE_RESP = 18
    FORGET_LEADER = 19  # local: a follower forgets its leader (the operator knows it is gone)


@dataclass(frozen=True, slots=True)
class Entry:
    """One log entry: its position (term, index) and an opaque payload."""

    term: int
    index: int
    type: EntryType = EntryType.NORMAL
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be on disk before a member answers anyone (Figure 2: currentTerm, votedFor, commit)."""

    term: int = 0
    vote: int = NO_NODE
    commit: int = 0


@dataclass(frozen=True, slots=True)
class ConfState:
    """The membership a log prefix or snapshot stands for."""

    voters: tuple[int, ...] = ()
    learners: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class ConfChange:
    """A single-member change; `context` is opaque to Raft (the server puts the member record there)."""

    type: ConfChangeType
    node_id: int
    context: bytes = b""
    id: int = 0


@dataclass(frozen=True, slots=True)
class SnapshotMetadata:
    index: int = 0
    term: int = 0
    conf_state: ConfState = field(default_factory=ConfState)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A compacted prefix of the log: the application's state up to metadata.index (§7)."""

    metadata: SnapshotMetadata = field(default_factory=SnapshotMetadata)
    data: bytes = b""

    @property
    def is_empty(self) -> bool:
        return self.metadata.index == 0


@dataclass(frozen=True, slots=True)
class Message:
    """A message between members (or a local event fed to `step`).

    `log_term`/`index` locate the entry preceding `entries` in APP (§5.3), or the
    candidate's last entry in VOTE/PRE_VOTE (§5.4.1). `reject_hint` carries the
    follower's last index for fast backtracking. `context` carries ReadIndex
    request contexts and the campaign kind of a forced (transfer) election.
    """

    type: MessageType
    to: int = NO_NODE
    sender: int = NO_NODE
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    snapshot: Snapshot | None = None
    reject: bool = False
    reject_hint: int = 0
    context: bytes = b""


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile facts the application likes to know; not persisted."""

    leader_id: int = NO_NODE
    role: StateRole = StateRole.FOLLOWER


@dataclass(frozen=True, slots=True)
class ReadState:
    """A ReadIndex answer: once applied_index >= index, reads for `request_ctx` are linearizable."""

    index: int
    request_ctx: bytes


@dataclass(frozen=True, slots=True)
class Ready:
    """Everything the application must do now, in this order:

    1. send `messages`: they promise nothing about our disk, so they may leave before or while
       step 2 runs (thesis §10.2.1: the leader replicates in parallel with its own write);
    2. persist `hard_state`, `entries` and `snapshot` (one fsync when `must_sync`);
    3. send `messages_after_append` (votes and append acknowledgements: only once step 2 is
       durable, §5 Figure 2);
    4. apply `snapshot`, then `committed_entries`, in order, calling `apply_conf_change` for each
       CONF_CHANGE entry; act on `read_states`;
    5. call `advance(ready)`.

    Normal committed entries may be applied after `advance` by an application that applies in
    order (the driver hands them to an apply queue); conf changes may not, or the core would
    count votes and quorums with a membership it has not switched to yet (thesis §4.1).
    """

    soft_state: SoftState | None = None
    hard_state: HardState | None = None
    entries: tuple[Entry, ...] = ()
    snapshot: Snapshot | None = None
    committed_entries: tuple[Entry, ...] = ()
    messages: tuple[Message, ...] = ()
    messages_after_append: tuple[Message, ...] = ()
    read_states: tuple[ReadState, ...] = ()
    must_sync: bool = False

    @property
    def commits_conf_change(self) -> bool:
        """Whether a committed entry changes the membership: the driver must apply it before `advance`."""
        return any(e.type is EntryType.CONF_CHANGE for e in self.committed_entries)

    @property
    def has_durable_state(self) -> bool:
        """Whether step 2 has anything to write."""
        return (self.hard_state is not None or bool(self.entries)
                or (self.snapshot is not None and not self.snapshot.is_empty))


class RaftError(Exception):
    """Base of the errors the core raises to its caller."""


class ProposalDropped(RaftError):
    """The proposal was not accepted: no leader known, a transfer under way, or a conf change pending."""


class CompactedError(RaftError):
    """The requested index is below the first index the storage still holds."""


class UnavailableError(RaftError):
    """The requested index is above the last index the storage holds."""


class SnapshotTemporarilyUnavailable(RaftError):
    """The storage cannot produce a snapshot right now; the leader retries later."""
