"""The on-disk layout of a bbolt file (go.etcd.io/bbolt 1.3), the database etcd keeps its backend in.

A bbolt file is an array of fixed-size pages (the page size is the writer's OS page size, 4096 on
the machines etcd runs on). Every integer is little-endian. Every page starts with a 16-byte header::

    id u64 | flags u16 | count u16 | overflow u32

``id`` is the page's own number (its offset divided by the page size); ``flags`` says what the page
holds; ``count`` how many elements follow; ``overflow`` how many extra pages the page runs on into
(a page too big for one page takes ``overflow + 1`` consecutive ones).

Pages 0 and 1 are the two *meta* pages. A commit writes the new meta to page ``txid % 2``, so the
previous one stays intact if the write is torn; a reader takes the valid meta with the higher txid.
The meta, right after the page header, is::

    magic u32 | version u32 | page_size u32 | flags u32 | root bucket (root u64, sequence u64)
    | freelist u64 | pgid u64 | txid u64 | checksum u64

``pgid`` is the high-water mark (the number of pages in use); ``checksum`` is FNV-1a 64 over the 56
bytes before it.

*Branch* pages hold ``count`` elements ``pos u32 | ksize u32 | pgid u64`` pointing at child pages,
each keyed by the child's first key; *leaf* pages hold ``flags u32 | pos u32 | ksize u32 | vsize u32``.
``pos`` counts from the start of the element itself to its key; the value follows the key. A leaf
element with the bucket flag is a nested bucket: its value starts with a bucket header
``root u64 | sequence u64``. A root of 0 means an *inline* bucket: a whole leaf page (header and
all) follows in the value instead of living on a page of its own.

The *freelist* page lists the free page ids, sorted; when there are 0xFFFF or more, ``count`` is
0xFFFF and the real count is the first u64.
"""

from __future__ import annotations

import struct

MAGIC = 0xED0CDAED
VERSION = 2
DEFAULT_PAGE_SIZE = 4096

BRANCH_PAGE = 0x01
LEAF_PAGE = 0x02
META_PAGE = 0x04
FREELIST_PAGE = 0x10

BUCKET_LEAF_FLAG = 0x01
"""A leaf element whose value is a nested bucket."""

PAGE_HEADER = struct.Struct("<QHHI")
BRANCH_ELEMENT = struct.Struct("<IIQ")
LEAF_ELEMENT = struct.Struct("<IIII")
BUCKET_HEADER = struct.Struct("<QQ")
META = struct.Struct("<IIIIQQQQQQ")
PGID = struct.Struct("<Q")

META_CHECKSUMMED_BYTES = META.size - 8
"""The checksum covers every meta field before it."""

FREELIST_COUNT_OVERFLOW = 0xFFFF
NO_FREELIST = 0xFFFFFFFFFFFFFFFF
"""A meta's freelist id when the freelist is not stored (bbolt's NoFreelistSync)."""

_FNV64_OFFSET = 0xCBF29CE484222325
_FNV64_PRIME = 0x100000001B3
_U64_MASK = (1 << 64) - 1


def fnv64a(data: bytes) -> int:
    """FNV-1a, 64 bits: the meta page checksum."""
    h = _FNV64_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV64_PRIME) & _U64_MASK
    return h


def max_inline_bucket_size(page_size: int) -> int:
    """A bucket with no sub-buckets is stored inline while its leaf page is at most this big."""
    return page_size // 4
