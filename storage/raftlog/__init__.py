"""The durable Raft log: entries, hard state and snapshot metadata in checksummed segment files."""

from storage.raftlog.log import DurableLog
from storage.raftlog.records import CorruptLogError

__all__ = ["CorruptLogError", "DurableLog"]
