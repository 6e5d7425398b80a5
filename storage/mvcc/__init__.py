"""etcd's MVCC keyspace over LMDB: keys, revisions and leases in read and write transactions, compaction and
watchers. It knows nothing of the client's requests (pyetcd/apply_kv.py turns those into transactions)."""

from storage.mvcc.errors import (
    CompactedError,
    FutureRevisionError,
    LeaseExistsError,
    LeaseNotFoundError,
    MvccError,
    QuotaExceededError,
    StoreClosedError,
)
from storage.mvcc.kvstore import MvccStore, WriteBatch
from storage.mvcc.kvstore_txn import RangeResult, TxnRead, TxnWrite, range_end_of
from storage.mvcc.watchable import Watcher

__all__ = [
    "CompactedError",
    "FutureRevisionError",
    "LeaseExistsError",
    "LeaseNotFoundError",
    "MvccError",
    "MvccStore",
    "QuotaExceededError",
    "RangeResult",
    "StoreClosedError",
    "TxnRead",
    "TxnWrite",
    "WriteBatch",
    "Watcher",
    "range_end_of",
]
