"""Snapshot files as `etcdctl snapshot save` writes them: an etcd backend (a bbolt file) followed by the
SHA-256 of everything before it. pyetcd's own older snapshots (its LMDB store, same trailer) still load.
"""

from __future__ import annotations

import hashlib
import struct

from pyetcd.etcd_backend import etcd_backend, store_contents
from storage.bbolt import layout as bbolt_layout
from storage.bbolt import read_database, write_database
from storage.mvcc.contents import StoreContents

SHA256_SIZE = 32
_MAGIC = struct.Struct("<I")


def has_checksum(size: int) -> bool:
    """etcd's test for a trailer: a bbolt file is whole pages, so 32 bytes past a 512-byte boundary
    can only be the hash (clientv3/snapshot's hasChecksum)."""
    return size % 512 == SHA256_SIZE


def strip_trailer(blob: bytes, skip_hash_check: bool) -> bytes:
    """The database bytes of a snapshot file, after etcd's hash check (and with etcd's errors)."""
    if not has_checksum(len(blob)):
        if not skip_hash_check:
            raise ValueError("snapshot missing hash but --skip-hash-check=false")
        return blob
    data, digest = blob[:-SHA256_SIZE], blob[-SHA256_SIZE:]
    if not skip_hash_check:
        actual = hashlib.sha256(data).digest()
        if actual != digest:
            raise ValueError(f"expected sha256 {go_bytes(digest)}, got {go_bytes(actual)}")
    return data


def go_bytes(data: bytes) -> str:
    """A byte slice as Go's %v prints it: [1 2 3]."""
    return "[" + " ".join(str(b) for b in data) + "]"


def is_bbolt(data: bytes) -> bool:
    """Whether the first meta page carries bbolt's magic number (pyetcd's LMDB files do not)."""
    offset = bbolt_layout.PAGE_HEADER.size
    return len(data) >= offset + 4 and _MAGIC.unpack_from(data, offset)[0] == bbolt_layout.MAGIC


def etcd_database(contents: StoreContents) -> bytes:
    """The bbolt database a real etcd 3.4 would hold for this store (no trailer)."""
    return write_database(etcd_backend(contents))


def contents_of_etcd_database(data: bytes) -> StoreContents:
    """The store records in an etcd backend file; refuses damaged files (CorruptDatabase, a ValueError)."""
    _, root = read_database(data)
    return store_contents(root)
