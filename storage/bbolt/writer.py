"""Writing a bbolt file from buckets in memory, the way a fresh bbolt database would hold them.

The file is built bottom-up in one pass: each bucket's nested buckets first (small ones inline in
their parent's leaf, as bbolt stores them), then its leaf pages, then branch pages above them until
one page is the bucket's root. Pages are numbered in the order they are made, after the two meta
pages (0 and 1) and an empty freelist (2); every page is in use, so bbolt's consistency check finds
nothing unreachable. Both meta pages describe the same tree, with txids 0 and 1 as bbolt's own
initialisation writes them, so the first commit of whoever opens the file goes to page 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from storage.bbolt import layout as L
from storage.bbolt.bucket import Bucket

Element = tuple[int, bytes, bytes]
"""(leaf flags, key, value) of one leaf element."""
T = TypeVar("T")


def write_database(root: Bucket, page_size: int = L.DEFAULT_PAGE_SIZE) -> bytes:
    """The bytes of a bbolt file whose root bucket holds ``root``'s buckets (and keys, if any)."""
    return _Writer(page_size).database(root)


class _Writer:
    def __init__(self, page_size: int) -> None:
        if page_size < 512 or page_size & (page_size - 1):
            raise ValueError(f"page size {page_size} is not a power of two of at least 512")
        self.page_size = page_size
        self.pages: list[bytes] = []
        self.next_id = 3

    def database(self, root: Bucket) -> bytes:
        root_id = self.tree(self.elements(root))
        pgid = self.next_id
        metas = [self.meta_page(page_id, root_id, root.sequence, pgid) for page_id in (0, 1)]
        freelist = self.padded(L.PAGE_HEADER.pack(2, L.FREELIST_PAGE, 0, 0), 1)
        return b"".join([*metas, freelist, *self.pages])

    def meta_page(self, page_id: int, root_id: int, sequence: int, pgid: int) -> bytes:
        fields = (L.MAGIC, L.VERSION, self.page_size, 0, root_id, sequence, 2, pgid, page_id)
        meta = L.META.pack(*fields, 0)[:L.META_CHECKSUMMED_BYTES]
        meta += L.PGID.pack(L.fnv64a(meta))
        return self.padded(L.PAGE_HEADER.pack(page_id, L.META_PAGE, 0, 0) + meta, 1)

    def padded(self, data: bytes, pages: int) -> bytes:
        return data + bytes(pages * self.page_size - len(data))

    def allocate(self, size: int) -> tuple[int, int]:
        """(first page id, overflow) of a run of pages holding ``size`` bytes."""
        pages = -(-size // self.page_size)
        page_id = self.next_id
        self.next_id += pages
        return page_id, pages - 1

    # --- buckets ---
    def elements(self, bucket: Bucket) -> list[Element]:
        """The bucket's leaf elements in key order, nested buckets written (or inlined) first."""
        clash = bucket.items.keys() & bucket.buckets.keys()
        if clash:
            raise ValueError(f"key {min(clash)!r} is both a value and a bucket")
        found: list[Element] = [(0, key, value) for key, value in bucket.items.items()]
        found += [(L.BUCKET_LEAF_FLAG, name, self.bucket_value(child)) for name, child in bucket.buckets.items()]
        found.sort(key=lambda element: element[1])
        return found

    def bucket_value(self, bucket: Bucket) -> bytes:
        elements = self.elements(bucket)
        if not bucket.buckets and leaf_size(elements) <= L.max_inline_bucket_size(self.page_size):
            return L.BUCKET_HEADER.pack(0, bucket.sequence) + leaf_page(0, 0, elements)
        return L.BUCKET_HEADER.pack(self.tree(elements), bucket.sequence)

    # --- B+tree pages ---
    def tree(self, elements: list[Element]) -> int:
        """Write leaf pages for ``elements`` and branch pages above them; returns the root page id."""
        level: list[tuple[bytes, int]] = []
        for group in self.split(elements, lambda e: L.LEAF_ELEMENT.size + len(e[1]) + len(e[2])):
            page_id, overflow = self.allocate(leaf_size(group))
            self.pages.append(self.padded(leaf_page(page_id, overflow, group), overflow + 1))
            level.append((group[0][1] if group else b"", page_id))
        while len(level) > 1:
            parents: list[tuple[bytes, int]] = []
            for children in self.split(level, lambda c: L.BRANCH_ELEMENT.size + len(c[0])):
                size = L.PAGE_HEADER.size + sum(L.BRANCH_ELEMENT.size + len(key) for key, _ in children)
                page_id, overflow = self.allocate(size)
                self.pages.append(self.padded(branch_page(page_id, overflow, children), overflow + 1))
                parents.append((children[0][0], page_id))
            level = parents
        return level[0][1]

    def split(self, items: list[T], size_of: Callable[[T], int]) -> list[list[T]]:
        """Consecutive groups that each fit a page (a lone element bigger than a page gets its own,
        with overflow pages); always at least one group, so an empty bucket still has a leaf."""
        groups: list[list[T]] = [[]]
        used = L.PAGE_HEADER.size
        for item in items:
            size = size_of(item)
            if groups[-1] and used + size > self.page_size:
                groups.append([])
                used = L.PAGE_HEADER.size
            groups[-1].append(item)
            used += size
        return groups


def leaf_size(elements: list[Element]) -> int:
    return L.PAGE_HEADER.size + sum(L.LEAF_ELEMENT.size + len(k) + len(v) for _, k, v in elements)


def leaf_page(page_id: int, overflow: int, elements: list[Element]) -> bytes:
    """A leaf page: header, the element array, then each key followed by its value."""
    parts = [L.PAGE_HEADER.pack(page_id, L.LEAF_PAGE, len(elements), overflow)]
    data_offset = L.PAGE_HEADER.size + len(elements) * L.LEAF_ELEMENT.size
    for i, (flags, key, value) in enumerate(elements):
        element_offset = L.PAGE_HEADER.size + i * L.LEAF_ELEMENT.size
        parts.append(L.LEAF_ELEMENT.pack(flags, data_offset - element_offset, len(key), len(value)))
        data_offset += len(key) + len(value)
    for _, key, value in elements:
        parts += (key, value)
    return b"".join(parts)


def branch_page(page_id: int, overflow: int, children: list[tuple[bytes, int]]) -> bytes:
    """A branch page: header, the element array (key position, key size, child page), then the keys."""
    parts = [L.PAGE_HEADER.pack(page_id, L.BRANCH_PAGE, len(children), overflow)]
    data_offset = L.PAGE_HEADER.size + len(children) * L.BRANCH_ELEMENT.size
    for i, (key, child) in enumerate(children):
        element_offset = L.PAGE_HEADER.size + i * L.BRANCH_ELEMENT.size
        parts.append(L.BRANCH_ELEMENT.pack(data_offset - element_offset, len(key), child))
        data_offset += len(key)
    parts += (key for key, _ in children)
    return b"".join(parts)
