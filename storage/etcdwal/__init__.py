"""etcd 3.4's write-ahead log (``member/wal/*.wal``), read: records, CRC chaining, entries and hard state."""

from storage.etcdwal.reader import WalContents, WalCorruptError, read_wal
from storage.etcdwal.records import Entry, EntryType, HardState

__all__ = ["Entry", "EntryType", "HardState", "WalContents", "WalCorruptError", "read_wal"]
