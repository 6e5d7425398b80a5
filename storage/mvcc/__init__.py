"""etcd's MVCC keyspace over LMDB: revisions, key index, ranges, txns, compaction, leases and watchers."""

from storage.mvcc.errors import (
    CompactedError,
    FutureRevisionError,
    KeyNotFoundError,
    LeaseExistsError,
    LeaseNotFoundError,
    LeaseProvidedError,
    MvccError,
    QuotaExceededError,
    StoreClosedError,
    ValueProvidedError,
)
from storage.mvcc.kvstore import MvccStore, WriteBatch
from storage.mvcc.watchable import Watcher

__all__ = [
    "CompactedError",
    "FutureRevisionError",
    "KeyNotFoundError",
    "LeaseExistsError",
    "LeaseNotFoundError",
    "LeaseProvidedError",
    "MvccError",
    "MvccStore",
    "QuotaExceededError",
    "StoreClosedError",
    "ValueProvidedError",
    "WriteBatch",
    "Watcher",
]
