"""Everything a store holds, as plain values: what moves when a store is exported to or built from
another format (etcd's bbolt snapshots). The records keep the store's own encodings, which are etcd's
for the ``key`` and ``meta`` databases (see backend.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storage.mvcc import backend as be
from storage.mvcc.backend import Backend

Progress = Callable[[int, int], None]
"""Called with (records done, bytes done) while a store is built."""


@dataclass(slots=True)
class StoreContents:
    revisions: list[tuple[bytes, bytes]] = field(default_factory=list)
    """The ``key`` database in revision order: revision bytes (tombstones marked) -> mvccpb.KeyValue."""
    meta: dict[bytes, bytes] = field(default_factory=dict)
    """The ``meta`` database: consistent index and term, scheduled and finished compact revision."""
    leases: dict[int, int] = field(default_factory=dict)
    """Lease ID -> granted TTL in seconds."""
    buckets: dict[str, dict[bytes, bytes]] = field(default_factory=dict)
    """The server's own tables (members, alarms, ...), by bucket name."""


def read_contents(backend: Backend) -> StoreContents:
    """Everything in ``backend``, read in one transaction (a consistent point in time)."""
    contents = StoreContents()
    with backend.begin() as txn:
        contents.revisions = [(bytes(k), bytes(v)) for k, v in txn.cursor(db=backend.key_db)]
        contents.meta = {bytes(k): bytes(v) for k, v in txn.cursor(db=backend.meta_db)}
        contents.leases = {be.decode_lease_id(k): be.decode_u64(v) for k, v in txn.cursor(db=backend.lease_db)}
        for raw, value in txn.cursor(db=backend.bucket_db):
            name, _, key = bytes(raw).partition(b"\x00")
            contents.buckets.setdefault(name.decode(), {})[key] = bytes(value)
    return contents


def write_contents(directory: Path, contents: StoreContents, *, map_size: int,
                   progress: Progress | None = None) -> None:
    """Build a new store in ``directory`` (which must not hold one) from ``contents``."""
    if (directory / be.DATA_FILE).exists():
        raise FileExistsError(f"{directory} already holds a store")
    backend = Backend(directory, map_size)
    try:
        done_records = done_bytes = 0
        for batch in _batches(contents.revisions, 10_000):
            with backend.begin(write=True) as txn:
                cursor = txn.cursor(db=backend.key_db)
                for raw_rev, raw_kv in batch:
                    cursor.put(raw_rev, raw_kv, append=True)
                    done_bytes += len(raw_kv)
            done_records += len(batch)
            if progress is not None:
                progress(done_records, done_bytes)
        with backend.begin(write=True) as txn:
            for key, value in contents.meta.items():
                txn.put(key, value, db=backend.meta_db)
            for lease_id, ttl in contents.leases.items():
                txn.put(be.encode_lease_id(lease_id), be.encode_u64(ttl), db=backend.lease_db)
            for name, items in contents.buckets.items():
                for key, value in items.items():
                    txn.put(be.bucket_key(name, key), value, db=backend.bucket_db)
        backend.env.sync(True)
    finally:
        backend.close()


def _batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
