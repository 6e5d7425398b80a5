"""Revisions and their on-disk byte form, laid out as etcd's mvcc/revision.go lays them out.

A revision is (main, sub): main counts write transactions, sub counts the changes inside one. On disk a
revision is 17 bytes, ``main`` (8 bytes, big endian) ``'_'`` ``sub`` (8 bytes, big endian), so byte order is
revision order; a deletion appends the tombstone mark ``'t'``.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

REV_BYTES_LEN = 17
MARKED_REV_BYTES_LEN = REV_BYTES_LEN + 1
TOMBSTONE_MARK = b"t"

_REV = struct.Struct(">QcQ")


class Revision(NamedTuple):
    """One change's place in history; tuples order the same way etcd's revisions do."""

    main: int
    sub: int = 0


def rev_to_bytes(rev: Revision, *, tombstone: bool = False) -> bytes:
    """The key under which this revision's KeyValue is stored."""
    raw = _REV.pack(rev.main, b"_", rev.sub)
    return raw + TOMBSTONE_MARK if tombstone else raw


def bytes_to_rev(raw: bytes) -> Revision:
    """Decode a revision key (a tombstone mark, if any, is ignored)."""
    main, _, sub = _REV.unpack_from(raw)
    return Revision(main, sub)


def is_tombstone(raw: bytes) -> bool:
    """Whether a revision key marks a deletion."""
    return len(raw) == MARKED_REV_BYTES_LEN and raw[-1:] == TOMBSTONE_MARK
