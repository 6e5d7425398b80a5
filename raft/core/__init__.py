"""The sans-I/O Raft core: a deterministic state machine in the style of etcd-io/raft.

Start with `RawNode` (rawnode.py); `Raft` (raft.py) holds the rules, `RaftLog` (log.py)
the log, `ProgressTracker` (tracker.py) the leader's view of its followers, and roles.py
the table of role transitions.
"""

from raft.core.codec import decode_conf_change, encode_conf_change
from raft.core.config import Config
from raft.core.memory_storage import MemoryStorage, SnapshotOutOfDate
from raft.core.progress import ProgressState
from raft.core.rawnode import RawNode
from raft.core.ready_cycle import (
    AsyncReadyHooks,
    ReadyHooks,
    ready_steps,
    run_ready_cycle,
    run_ready_cycle_async,
)
from raft.core.roles import describe_role_transitions
from raft.core.status import ProgressStatus, Status
from raft.core.storage import LogStore, Storage
from raft.core.types import (
    NO_NODE,
    CompactedError,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ProposalDropped,
    RaftError,
    ReadState,
    Ready,
    Snapshot,
    SnapshotMetadata,
    SnapshotTemporarilyUnavailable,
    SoftState,
    StateRole,
    UnavailableError,
)

__all__ = [
    "NO_NODE",
    "CompactedError",
    "Config",
    "ConfChange",
    "ConfChangeType",
    "ConfState",
    "Entry",
    "EntryType",
    "HardState",
    "LogStore",
    "MemoryStorage",
    "Message",
    "MessageType",
    "ProgressState",
    "ProgressStatus",
    "ProposalDropped",
    "RaftError",
    "RawNode",
    "ReadState",
    "Ready",
    "ReadyHooks",
    "AsyncReadyHooks",
    "Snapshot",
    "SnapshotMetadata",
    "SnapshotOutOfDate",
    "SnapshotTemporarilyUnavailable",
    "SoftState",
    "StateRole",
    "Status",
    "Storage",
    "UnavailableError",
    "decode_conf_change",
    "describe_role_transitions",
    "encode_conf_change",
    "ready_steps",
    "run_ready_cycle",
    "run_ready_cycle_async",
]
