"""The key index: for every key, its generations of revisions (etcd's mvcc/key_index.go and index.go).

A generation is one life of a key: it starts with the put that creates the key and ends with the deletion
(the tombstone), after which an empty generation waits for the next creation. Values live in the store under
their revision; the index only answers "which revision of this key is visible at revision R?".

The index is held in memory and rebuilt from the stored revisions when the store opens, as etcd does: keys of
any length work (LMDB keys are limited to 511 bytes) and lookups cost no decoding. Writes return an undo
callable so a failed write can be taken back before its LMDB transaction is aborted.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from storage.mvcc.revision import Revision

Undo = Callable[[], None]

_NO_REVISION = Revision(0, 0)


@dataclass(slots=True)
class Generation:
    """One life of a key: its revisions from creation up to and including its tombstone."""

    created: int = 0
    """Main revision of the put that created this generation (0 while the generation is empty)."""
    version: int = 0
    """Changes made in this generation: the version of its latest revision."""
    revs: list[Revision] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not self.revs

    def last_at_or_before(self, at_rev: int) -> int:
        """Index of the newest revision with main <= at_rev, or -1."""
        for i in range(len(self.revs) - 1, -1, -1):
            if self.revs[i].main <= at_rev:
                return i
        return -1


@dataclass(slots=True)
class KeyIndex:
    """Every surviving revision of one key, grouped in generations; the last generation is the live one."""

    key: bytes
    modified: Revision = _NO_REVISION
    generations: list[Generation] = field(default_factory=lambda: [Generation()])

    def is_empty(self) -> bool:
        return len(self.generations) == 1 and self.generations[0].is_empty()

    def is_live(self) -> bool:
        """Whether the key exists at its latest revision."""
        return not self.generations[-1].is_empty()

    def put(self, rev: Revision) -> None:
        if rev <= self.modified:
            raise ValueError(f"revision {rev} is not after the key's last revision {self.modified}")
        g = self.generations[-1]
        if g.is_empty():
            g.created = rev.main
        g.revs.append(rev)
        g.version += 1
        self.modified = rev

    def restore(self, created: int, modified: Revision, version: int) -> None:
        """Start the live generation from its oldest surviving revision (earlier ones were compacted)."""
        g = self.generations[-1]
        g.created, g.version, g.revs = created, version, [modified]
        self.modified = modified

    def tombstone(self, rev: Revision) -> bool:
        """End the live generation at ``rev``; False if the key is not live."""
        if not self.is_live():
            return False
        self.put(rev)
        self.generations.append(Generation())
        return True

    def undo_put(self, previous_modified: Revision) -> None:
        g = self.generations[-1]
        g.revs.pop()
        g.version -= 1
        if g.is_empty():
            g.created = 0
        self.modified = previous_modified

    def undo_tombstone(self, previous_modified: Revision) -> None:
        self.generations.pop()
        self.undo_put(previous_modified)

    def find_generation(self, at_rev: int) -> Generation | None:
        """The generation alive at ``at_rev``, or None when the key did not exist then."""
        last = len(self.generations) - 1
        for i in range(last, -1, -1):
            g = self.generations[i]
            if g.is_empty():
                continue
            # A closed generation whose tombstone is at or before at_rev means the key was deleted then.
            if i != last and g.revs[-1].main <= at_rev:
                return None
            if g.revs[0].main <= at_rev:
                return g
        return None

    def get(self, at_rev: int) -> Revision | None:
        """The revision of this key visible at ``at_rev``, or None."""
        g = self.find_generation(at_rev)
        if g is None:
            return None
        i = g.last_at_or_before(at_rev)
        return g.revs[i] if i >= 0 else None

    def _do_compact(self, at_rev: int, available: set[Revision]) -> tuple[int, int]:
        """Find the generation holding ``at_rev`` and mark its revision at ``at_rev`` as one to keep."""
        gen_idx = 0
        while gen_idx < len(self.generations) - 1:
            if self.generations[gen_idx].revs[-1].main > at_rev:
                break
            gen_idx += 1
        g = self.generations[gen_idx]
        rev_idx = g.last_at_or_before(at_rev)
        if rev_idx >= 0:
            available.add(g.revs[rev_idx])
        return gen_idx, rev_idx

    def compact(self, at_rev: int, available: set[Revision]) -> None:
        """Drop revisions below ``at_rev`` except the one visible at it; a deletion at or before it goes."""
        gen_idx, rev_idx = self._do_compact(at_rev, available)
        g = self.generations[gen_idx]
        if not g.is_empty():
            if rev_idx != -1:
                del g.revs[:rev_idx]
            if len(g.revs) == 1 and gen_idx != len(self.generations) - 1:
                available.discard(g.revs[0])
                gen_idx += 1
        del self.generations[:gen_idx]

    def keep(self, at_rev: int, available: set[Revision]) -> None:
        """Add the revisions a compaction at ``at_rev`` would keep, changing nothing."""
        gen_idx, rev_idx = self._do_compact(at_rev, available)
        g = self.generations[gen_idx]
        if not g.is_empty() and rev_idx == len(g.revs) - 1 and gen_idx != len(self.generations) - 1:
            available.discard(g.revs[rev_idx])


class TreeIndex:
    """All keys' indexes, ordered by key for range lookups (etcd's treeIndex over a B-tree)."""

    def __init__(self) -> None:
        self._keys: list[bytes] = []
        self._index: dict[bytes, KeyIndex] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def key_indexes(self) -> Iterator[KeyIndex]:
        return iter(self._index.values())

    def key_index(self, key: bytes) -> KeyIndex | None:
        return self._index.get(key)

    def get(self, key: bytes, at_rev: int) -> Revision | None:
        ki = self._index.get(key)
        return ki.get(at_rev) if ki is not None else None

    def keys_in(self, key: bytes, end: bytes | None) -> Iterator[bytes]:
        """Keys in [key, end) in order; ``end`` None means just ``key``, empty means no upper bound."""
        if end is None:
            if key in self._index:
                yield key
            return
        start = bisect.bisect_left(self._keys, key)
        for k in itertools.islice(self._keys, start, None):
            if end and k >= end:
                return
            yield k

    def range(self, key: bytes, end: bytes | None, at_rev: int) -> list[tuple[bytes, Revision]]:
        """(key, revision) of every key in the range that exists at ``at_rev``, in key order."""
        found: list[tuple[bytes, Revision]] = []
        for k in self.keys_in(key, end):
            rev = self._index[k].get(at_rev)
            if rev is not None:
                found.append((k, rev))
        return found

    def _add_key(self, key: bytes) -> KeyIndex:
        ki = KeyIndex(key)
        self._index[key] = ki
        bisect.insort(self._keys, key)
        return ki

    def _remove_key(self, key: bytes) -> None:
        del self._index[key]
        del self._keys[bisect.bisect_left(self._keys, key)]

    def put(self, key: bytes, rev: Revision) -> Undo:
        ki = self._index.get(key)
        added = ki is None
        if ki is None:
            ki = self._add_key(key)
        previous = ki.modified
        ki.put(rev)

        def undo() -> None:
            assert ki is not None
            ki.undo_put(previous)
            if added:
                self._remove_key(key)

        return undo

    def tombstone(self, key: bytes, rev: Revision) -> Undo | None:
        """Delete ``key`` at ``rev``; None (and no change) if it is not live."""
        ki = self._index.get(key)
        if ki is None:
            return None
        previous = ki.modified
        if not ki.tombstone(rev):
            return None
        return lambda: ki.undo_tombstone(previous)

    def restore(self, key: bytes, rev: Revision, created: int, version: int, tombstone: bool) -> None:
        """Replay one stored revision while rebuilding the index on open."""
        ki = self._index.get(key)
        if tombstone:
            if ki is not None:
                ki.tombstone(rev)
            return
        if ki is None:
            ki = self._add_key(key)
        if ki.is_live():
            ki.put(rev)
        else:
            ki.restore(created, rev, version)

    def compact(self, at_rev: int) -> set[Revision]:
        """Compact every key at ``at_rev``; returns the revisions at or below it that must stay stored."""
        available: set[Revision] = set()
        emptied = False
        for ki in self._index.values():
            ki.compact(at_rev, available)
            emptied = emptied or ki.is_empty()
        if emptied:
            for key in [k for k, ki in self._index.items() if ki.is_empty()]:
                del self._index[key]
            self._keys = sorted(self._index)
        return available

    def keep(self, at_rev: int) -> set[Revision]:
        """The revisions a compaction at ``at_rev`` would keep."""
        available: set[Revision] = set()
        for ki in self._index.values():
            ki.keep(at_rev, available)
        return available

    def live_items(self) -> Iterator[tuple[bytes, Revision]]:
        """(key, latest revision) of every live key, in key order."""
        for k in self._keys:
            ki = self._index[k]
            if ki.is_live():
                yield k, ki.modified
