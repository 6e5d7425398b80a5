"""The LMDB environment under the MVCC store: its sub-databases, encodings, sizes and file swaps.

Layout (one LMDB environment per store directory, file ``data.mdb``):

``key``
    revision bytes (see revision.py) -> marshaled mvccpb.KeyValue, exactly as etcd's bolt bucket ``key``
    holds them (a deletion stores KeyValue{key} under its revision plus the tombstone mark ``'t'``). It is
    keyed by revision, not by key; the name is etcd's, so hashes follow etcd's definition.
``meta``
    ``consistent_index`` and ``consistent_term`` (8-byte big-endian; the last applied Raft entry, written in
    the same transaction as its data), ``scheduledCompactRev`` and ``finishedCompactRev`` (revision bytes).
``lease``
    lease ID (8-byte big-endian) -> granted TTL in seconds (8-byte big-endian).
``bucket``
    the server's own small tables (members, alarms, ...): bucket name, NUL, key -> value.

Durability: LMDB commits by writing pages then the meta page; ``metasync`` is off, and ``sync`` (an fsync
per commit) is the opener's choice. Either way a committed transaction is in the OS page cache before commit
returns, so kill -9 never loses it. On power loss LMDB may undo the transactions not yet flushed, whose Raft
entries are still in the durable Raft log above consistent_index and are applied again: a server that keeps
its Raft log until the store is synced (see ``MvccStore.sync``) can skip the per-commit fsync.
"""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path
from typing import Any

import lmdb

from storage.mvcc.revision import Revision, bytes_to_rev, rev_to_bytes

KEY_DB = b"key"
META_DB = b"meta"
LEASE_DB = b"lease"
BUCKET_DB = b"bucket"
SUB_DBS = (BUCKET_DB, KEY_DB, LEASE_DB, META_DB)  # in name order: the order hashes visit them

CONSISTENT_INDEX = b"consistent_index"
CONSISTENT_TERM = b"consistent_term"
SCHEDULED_COMPACT = b"scheduledCompactRev"
FINISHED_COMPACT = b"finishedCompactRev"

DATA_FILE = "data.mdb"
LOCK_FILE = "lock.mdb"
INCOMING_FILE = DATA_FILE + ".incoming"
"""Snapshot bytes being written before they replace the data file."""

_U64 = struct.Struct(">Q")
_I64 = struct.Struct(">q")


def encode_u64(value: int) -> bytes:
    return _U64.pack(value)


def decode_u64(raw: bytes) -> int:
    value: int = _U64.unpack(raw)[0]
    return value


def encode_lease_id(lease_id: int) -> bytes:
    return _I64.pack(lease_id)


def decode_lease_id(raw: bytes) -> int:
    value: int = _I64.unpack(raw)[0]
    return value


def bucket_key(bucket: str, key: bytes) -> bytes:
    name = bucket.encode()
    if not name or b"\x00" in name:
        raise ValueError(f"bad bucket name {bucket!r}")
    return name + b"\x00" + key


def open_env(path: Path, map_size: int, sync_commits: bool = True) -> Any:
    return lmdb.open(
        str(path),
        map_size=map_size,
        subdir=True,
        max_dbs=len(SUB_DBS) + 4,
        sync=sync_commits,
        metasync=False,
        writemap=False,
        lock=True,
    )


class Backend:
    """An open LMDB environment with the store's sub-databases."""

    def __init__(self, path: Path, map_size: int, sync_commits: bool = True) -> None:
        self.path = path
        self.map_size = map_size
        self.env = open_env(path, map_size, sync_commits)
        with self.env.begin(write=True) as txn:
            dbs = {name: self.env.open_db(name, txn=txn) for name in SUB_DBS}
        self.key_db = dbs[KEY_DB]
        self.meta_db = dbs[META_DB]
        self.lease_db = dbs[LEASE_DB]
        self.bucket_db = dbs[BUCKET_DB]
        self.dbs = dbs
        self.main_db = self.env.open_db(None)

    def begin(self, *, write: bool = False, parent: Any = None) -> Any:
        return self.env.begin(write=write, parent=parent)

    def close(self) -> None:
        self.env.close()

    # --- meta values ---
    def get_u64(self, txn: Any, name: bytes) -> int:
        raw = txn.get(name, db=self.meta_db)
        return decode_u64(raw) if raw is not None else 0

    def get_revision(self, txn: Any, name: bytes) -> int:
        raw = txn.get(name, db=self.meta_db)
        return bytes_to_rev(raw).main if raw is not None else 0

    def put_revision(self, txn: Any, name: bytes, main: int) -> None:
        txn.put(name, rev_to_bytes(Revision(main)), db=self.meta_db)

    def last_revision(self, txn: Any) -> int:
        """Main revision of the newest stored change, or 0 when nothing is stored."""
        cursor = txn.cursor(db=self.key_db)
        return bytes_to_rev(cursor.key()).main if cursor.last() else 0

    # --- sizes ---
    def in_use_bytes(self, txn: Any) -> int:
        """Bytes in pages that hold data as ``txn`` sees it (free pages not counted), plus the meta pages."""
        pages = 2
        stats = [txn.stat(db) for db in (*self.dbs.values(), self.main_db)]
        psize = 4096
        for st in stats:
            pages += st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"]
            psize = st["psize"]
        return int(pages * psize)

    def file_size(self) -> int:
        return os.path.getsize(self.path / DATA_FILE)

    # --- copies ---
    def copy_to(self, directory: Path) -> Path:
        """A compacting, point-in-time copy of the environment into ``directory``; returns the data file."""
        directory.mkdir(parents=True, exist_ok=True)
        self.env.copy(str(directory), compact=True)
        return directory / DATA_FILE


def install_data_file(directory: Path, source: Path) -> None:
    """Atomically make ``source`` the data file of the environment in ``directory`` (env must be closed).

    ``source`` is synced first: a rename can reach the disk before the renamed file's data does, and a power
    failure must not leave a data file that is empty or half there.
    """
    fsync_path(source)
    os.replace(source, directory / DATA_FILE)
    fsync_path(directory)


def write_data_file(directory: Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file inside ``directory``, durably; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / INCOMING_FILE
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return tmp


def fsync_path(path: Path) -> None:
    """fsync a file's data, or a directory's entries (creations, renames), by its path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_tree(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
