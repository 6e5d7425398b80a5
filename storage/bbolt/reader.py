"""Reading a bbolt file: pick the meta page, walk the B+trees, check every page is accounted for.

The reader trusts nothing in the file: every page id, offset and length is checked against the file
and the meta's high-water mark before it is used, so a truncated or damaged file raises
``CorruptDatabase`` with what is wrong instead of crashing or returning half the data.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from storage.bbolt import layout as L
from storage.bbolt.bucket import Bucket


class CorruptDatabase(ValueError):
    """The file is not a bbolt database, or one that is damaged. Messages of bbolt's own errors
    ("invalid database", "version mismatch", "checksum error") are kept word for word."""


@dataclass(frozen=True, slots=True)
class Meta:
    """The fields of a meta page (see layout.py); ``root`` and ``sequence`` are the root bucket's."""

    page_size: int
    flags: int
    root: int
    sequence: int
    freelist: int
    pgid: int
    txid: int


def parse_meta(data: bytes | memoryview, offset: int) -> Meta:
    """The meta at ``offset`` (just past a meta page's header), as bbolt's meta.validate() judges it."""
    if offset + L.META.size > len(data):
        raise CorruptDatabase("invalid database")
    magic, version, page_size, flags, root, sequence, freelist, pgid, txid, checksum = L.META.unpack_from(data, offset)
    if magic != L.MAGIC:
        raise CorruptDatabase("invalid database")
    if version != L.VERSION:
        raise CorruptDatabase("version mismatch")
    if checksum != 0 and checksum != L.fnv64a(bytes(data[offset:offset + L.META_CHECKSUMMED_BYTES])):
        raise CorruptDatabase("checksum error")
    return Meta(page_size, flags, root, sequence, freelist, pgid, txid)


def choose_meta(data: bytes | memoryview) -> Meta:
    """The meta a bbolt reader uses: of the two meta pages, the valid one with the higher txid.

    The page size comes from meta page 0; if that page is damaged bbolt falls back to the OS page
    size, and so do we (4096)."""
    try:
        page_size = parse_meta(data, L.PAGE_HEADER.size).page_size
    except CorruptDatabase:
        page_size = L.DEFAULT_PAGE_SIZE
    if page_size < 512 or page_size & (page_size - 1):
        raise CorruptDatabase("invalid database")
    metas: list[Meta] = []
    first_error: CorruptDatabase | None = None
    for page_id in (0, 1):
        try:
            metas.append(parse_meta(data, page_id * page_size + L.PAGE_HEADER.size))
        except CorruptDatabase as e:
            first_error = first_error or e
    if not metas:
        assert first_error is not None
        raise first_error
    meta = max(metas, key=lambda m: m.txid)
    if meta.page_size != page_size:
        raise CorruptDatabase("invalid database")
    return meta


class BoltReader:
    """A read-only view of one bbolt file's bytes, as of its newest valid meta page."""

    def __init__(self, data: bytes | memoryview) -> None:
        self.data = memoryview(data)
        self.meta = choose_meta(self.data)
        self.page_size = self.meta.page_size
        if self.meta.pgid < 2 or self.meta.root >= self.meta.pgid or self.meta.root < 2:
            raise CorruptDatabase(f"meta page: root page {self.meta.root} outside the {self.meta.pgid} pages in use")
        if len(self.data) < self.meta.pgid * self.page_size:
            raise CorruptDatabase(f"file is truncated: {len(self.data)} bytes, the meta page says "
                                  f"{self.meta.pgid} pages of {self.page_size} bytes are in use")

    @property
    def size(self) -> int:
        """Bytes in use (bbolt's Tx.Size(): pages up to the high-water mark)."""
        return self.meta.pgid * self.page_size

    # --- pages ---
    def page(self, page_id: int) -> tuple[int, int, memoryview]:
        """(flags, count, bytes) of the page ``page_id``, overflow pages included."""
        if not 2 <= page_id < self.meta.pgid:
            raise CorruptDatabase(f"page {page_id}: out of bounds: {self.meta.pgid}")
        start = page_id * self.page_size
        stored_id, flags, count, overflow = L.PAGE_HEADER.unpack_from(self.data, start)
        end = start + (overflow + 1) * self.page_size
        if page_id + overflow >= self.meta.pgid:
            raise CorruptDatabase(f"page {page_id}: overflow of {overflow} pages runs past the {self.meta.pgid} in use")
        if stored_id != page_id:
            raise CorruptDatabase(f"page {page_id}: header says it is page {stored_id}")
        return flags, count, self.data[start:end]

    def overflow(self, page_id: int) -> int:
        overflow: int = L.PAGE_HEADER.unpack_from(self.data, page_id * self.page_size)[3]
        return overflow

    def free_pages(self) -> list[int]:
        """The ids on the freelist page (empty when the meta says no freelist is stored)."""
        if self.meta.freelist == L.NO_FREELIST:
            return []
        flags, count, buf = self.page(self.meta.freelist)
        if not flags & L.FREELIST_PAGE:
            raise CorruptDatabase(f"page {self.meta.freelist}: invalid freelist page (flags {flags:#x})")
        offset = L.PAGE_HEADER.size
        if count == L.FREELIST_COUNT_OVERFLOW:
            count = L.PGID.unpack_from(buf, offset)[0]
            offset += L.PGID.size
        if offset + count * L.PGID.size > len(buf):
            raise CorruptDatabase(f"page {self.meta.freelist}: freelist of {count} ids does not fit its page")
        return [L.PGID.unpack_from(buf, offset + i * L.PGID.size)[0] for i in range(count)]

    # --- trees ---
    def leaf_elements(self, buf: memoryview, count: int, where: str) -> Iterator[tuple[int, bytes, memoryview]]:
        """(flags, key, value) of each element of the leaf page in ``buf``."""
        for i in range(count):
            offset = L.PAGE_HEADER.size + i * L.LEAF_ELEMENT.size
            if offset + L.LEAF_ELEMENT.size > len(buf):
                raise CorruptDatabase(f"{where}: {count} elements do not fit the page")
            flags, pos, ksize, vsize = L.LEAF_ELEMENT.unpack_from(buf, offset)
            start = offset + pos
            if start + ksize + vsize > len(buf):
                raise CorruptDatabase(f"{where}: element {i} runs past the end of the page")
            yield flags, bytes(buf[start:start + ksize]), buf[start + ksize:start + ksize + vsize]

    def branch_elements(self, buf: memoryview, count: int, where: str) -> Iterator[tuple[bytes, int]]:
        """(first key, child page id) of each element of the branch page in ``buf``."""
        for i in range(count):
            offset = L.PAGE_HEADER.size + i * L.BRANCH_ELEMENT.size
            if offset + L.BRANCH_ELEMENT.size > len(buf):
                raise CorruptDatabase(f"{where}: {count} elements do not fit the page")
            pos, ksize, child = L.BRANCH_ELEMENT.unpack_from(buf, offset)
            if offset + pos + ksize > len(buf):
                raise CorruptDatabase(f"{where}: element {i} runs past the end of the page")
            yield bytes(buf[offset + pos:offset + pos + ksize]), child

    def read(self) -> Bucket:
        """Every bucket and key of the file, checked as bbolt's Tx.Check checks them."""
        walk = _Walk(self)
        root = walk.tree(self.meta.root, self.meta.sequence, "root bucket")
        walk.check_accounting()
        return root


class _Walk:
    """One pass over the file: builds the buckets and notes which pages it reached."""

    def __init__(self, reader: BoltReader) -> None:
        self.reader = reader
        self.reachable: set[int] = {0, 1}
        self.last_key: dict[int, bytes] = {}
        """The greatest key seen so far in each bucket (by id): keys must rise across its pages."""
        free = reader.free_pages()
        self.freed = set(free)
        if len(self.freed) != len(free):
            raise CorruptDatabase("freelist: a page is freed twice")
        if reader.meta.freelist != L.NO_FREELIST:
            self._reach(reader.meta.freelist, reader.overflow(reader.meta.freelist))

    def _reach(self, page_id: int, overflow: int) -> None:
        for pid in range(page_id, page_id + overflow + 1):
            if pid in self.reachable:
                raise CorruptDatabase(f"page {pid}: multiple references")
            if pid in self.freed:
                raise CorruptDatabase(f"page {pid}: reachable freed")
            self.reachable.add(pid)

    def tree(self, root: int, sequence: int, name: str) -> Bucket:
        bucket = Bucket(sequence=sequence)
        self._collect(root, bucket, name, depth=0)
        return bucket

    def inline(self, value: memoryview, sequence: int, name: str) -> Bucket:
        bucket = Bucket(sequence=sequence)
        if len(value) < L.PAGE_HEADER.size:
            raise CorruptDatabase(f"{name}: inline bucket too short")
        _, flags, count, _ = L.PAGE_HEADER.unpack_from(value, 0)
        if not flags & L.LEAF_PAGE:
            raise CorruptDatabase(f"{name}: inline bucket is not a leaf page")
        self._leaf(value, count, bucket, f"{name} (inline)")
        return bucket

    def _collect(self, page_id: int, bucket: Bucket, name: str, depth: int) -> None:
        if depth > 64:
            raise CorruptDatabase(f"{name}: tree deeper than any bbolt writes")
        flags, count, buf = self.reader.page(page_id)
        self._reach(page_id, self.reader.overflow(page_id))
        where = f"page {page_id} ({name})"
        if flags & L.LEAF_PAGE:
            self._leaf(buf, count, bucket, where)
        elif flags & L.BRANCH_PAGE:
            if count == 0:
                raise CorruptDatabase(f"{where}: empty branch page")
            for _, child in list(self.reader.branch_elements(buf, count, where)):
                self._collect(child, bucket, name, depth + 1)
        else:
            raise CorruptDatabase(f"page {page_id}: invalid type: flags {flags:#x}")

    def _leaf(self, buf: memoryview, count: int, bucket: Bucket, where: str) -> None:
        last = self.last_key.get(id(bucket))
        for flags, key, value in self.reader.leaf_elements(buf, count, where):
            if last is not None and key <= last:
                raise CorruptDatabase(f"{where}: keys out of order")
            last = key
            if flags & L.BUCKET_LEAF_FLAG:
                if len(value) < L.BUCKET_HEADER.size:
                    raise CorruptDatabase(f"{where}: bucket {key!r} has a short header")
                root, sequence = L.BUCKET_HEADER.unpack_from(value, 0)
                label = key.decode(errors="replace")
                if root == 0:
                    bucket.buckets[key] = self.inline(value[L.BUCKET_HEADER.size:], sequence, label)
                else:
                    bucket.buckets[key] = self.tree(root, sequence, label)
            else:
                bucket.items[key] = bytes(value)
        if last is not None:
            self.last_key[id(bucket)] = last

    def check_accounting(self) -> None:
        if self.reader.meta.freelist == L.NO_FREELIST:
            return  # no stored freelist: bbolt counts every unreachable page as free
        for page_id in range(self.reader.meta.pgid):
            if page_id not in self.reachable and page_id not in self.freed:
                raise CorruptDatabase(f"page {page_id}: unreachable unfreed")


def read_database(data: bytes | memoryview) -> tuple[Meta, Bucket]:
    """The meta in use and the root bucket of a bbolt file's bytes."""
    reader = BoltReader(data)
    return reader.meta, reader.read()
