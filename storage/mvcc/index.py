"""The key index: for every key, its generations of revisions (etcd's mvcc/key_index.go and index.go).

A generation is one life of a key: it starts with the put that creates the key and ends with the deletion
(the tombstone), after which an empty generation waits for the next creation. Values live in the store under
their revision; the index only answers "which revision of this key is visible at revision R?".

The index is held in memory and rebuilt from the stored revisions when the store opens, as etcd does: keys of
any length work (LMDB keys are limited to 511 bytes) and lookups cost no decoding. Writes return an undo
callable so a failed write can be taken back before its LMDB transaction is aborted.

Memory and speed at scale (issue 14): keys are ordered by a ``SortedList`` (O(log n) inserts, where a plain
sorted list costs O(n) per new key), and a key's revisions are kept packed, ``main << 32 | sub``, one int
each instead of a tuple of two. A key's live generation sits in its ``KeyIndex`` itself and only closed
generations get objects of their own, so the common key (one life, one revision) is one small object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from sortedcontainers import SortedList

from storage.mvcc.revision import Revision

Undo = Callable[[], None]

_SUB_BITS = 32
_SUB_MASK = (1 << _SUB_BITS) - 1


def _pack(rev: Revision) -> int:
    """One int that orders as the revision does (sub counts changes in one txn: far below 2**32)."""
    if not 0 <= rev.sub <= _SUB_MASK:
        raise ValueError(f"revision {rev} has a sub-revision out of range")
    return rev.main << _SUB_BITS | rev.sub


def _unpack(packed: int) -> Revision:
    return Revision(packed >> _SUB_BITS, packed & _SUB_MASK)


def _main(packed: int) -> int:
    return packed >> _SUB_BITS


def _last_at_or_before(revs: list[int], at_rev: int) -> int:
    """Index of the newest packed revision with main <= at_rev, or -1."""
    for i in range(len(revs) - 1, -1, -1):
        if revs[i] >> _SUB_BITS <= at_rev:
            return i
    return -1


class Generation:
    """One life of a key: its revisions from creation up to its last change (its tombstone once closed).

    Closed generations are stored as these; ``KeyIndex.generations`` also shows the live one as one.
    """

    __slots__ = ("created", "version", "_earlier", "_last")

    def __init__(self, created: int, version: int, earlier: list[int] | None, last: int) -> None:
        self.created = created
        """Main revision of the put that created this generation (0 while the generation is empty)."""
        self.version = version
        """Changes made in this generation: the version of its latest revision."""
        self._earlier = earlier
        """Packed revisions before ``_last``, oldest first; None when there are none."""
        self._last = last
        """The packed latest revision (meaningless while the generation is empty)."""

    def is_empty(self) -> bool:
        return self.created == 0

    @property
    def revs(self) -> list[Revision]:
        """The generation's revisions, oldest first."""
        if self.created == 0:
            return []
        return [_unpack(r) for r in self._packed()]

    def _packed(self) -> list[int]:
        if self.created == 0:
            return []
        return [*self._earlier, self._last] if self._earlier else [self._last]


class KeyIndex:
    """Every surviving revision of one key, grouped in generations; the last generation is the live one.

    The live generation's fields are the key index's own (``created``, ``version``, ``_earlier`` and the
    latest change ``_modified``), closed generations are in ``_closed`` (None while there are none).
    ``created`` is 0 exactly while the live generation is empty: before the first put and after a deletion.
    """

    __slots__ = ("key", "created", "version", "_modified", "_earlier", "_closed")

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.created = 0
        self.version = 0
        self._modified = 0
        """Packed revision of the key's latest change, the tombstone included (0: none yet)."""
        self._earlier: list[int] | None = None
        self._closed: list[Generation] | None = None

    @property
    def modified(self) -> Revision:
        """The key's latest change, a deletion included (Revision(0, 0) before any)."""
        return _unpack(self._modified)

    @property
    def generations(self) -> list[Generation]:
        """The key's generations, oldest first, the live (possibly empty) one last; a read-only view."""
        live = Generation(self.created, self.version, self._earlier, self._modified)
        return [*self._closed, live] if self._closed else [live]

    def is_empty(self) -> bool:
        return self.created == 0 and not self._closed

    def is_live(self) -> bool:
        """Whether the key exists at its latest revision."""
        return self.created != 0

    def put(self, rev: Revision) -> None:
        self._put(_pack(rev))

    def _put(self, packed: int) -> None:
        if packed <= self._modified:
            raise ValueError(f"revision {_unpack(packed)} is not after the key's last revision {self.modified}")
        if self.created == 0:
            self.created = packed >> _SUB_BITS
        elif self._earlier is None:
            self._earlier = [self._modified]
        else:
            self._earlier.append(self._modified)
        self.version += 1
        self._modified = packed

    def restore(self, created: int, modified: Revision, version: int) -> None:
        """Start the live generation from its oldest surviving revision (earlier ones were compacted)."""
        self.created, self.version, self._earlier = created, version, None
        self._modified = _pack(modified)

    def tombstone(self, rev: Revision) -> bool:
        """End the live generation at ``rev``; False if the key is not live."""
        return self._tombstone(_pack(rev))

    def _tombstone(self, packed: int) -> bool:
        if self.created == 0:
            return False
        self._put(packed)
        closed = Generation(self.created, self.version, self._earlier, packed)
        if self._closed is None:
            self._closed = [closed]
        else:
            self._closed.append(closed)
        self.created, self.version, self._earlier = 0, 0, None
        return True

    def _undo_put(self, previous_modified: int) -> None:
        earlier = self._earlier
        self.version -= 1
        if earlier is None:
            self.created = 0
        else:
            earlier.pop()
            if not earlier:
                self._earlier = None
        self._modified = previous_modified

    def _undo_tombstone(self, previous_modified: int) -> None:
        assert self._closed is not None
        g = self._closed.pop()
        if not self._closed:
            self._closed = None
        self.created, self.version, self._earlier = g.created, g.version, g._earlier
        self._undo_put(previous_modified)

    def get(self, at_rev: int) -> Revision | None:
        """The revision of this key visible at ``at_rev``, or None."""
        packed = self._get(at_rev)
        return _unpack(packed) if packed else None

    def _get(self, at_rev: int) -> int:
        """The packed revision visible at ``at_rev``, or 0."""
        if self.created != 0:
            modified = self._modified
            if modified >> _SUB_BITS <= at_rev:
                return modified
            earlier = self._earlier
            if earlier is not None and earlier[0] >> _SUB_BITS <= at_rev:
                return earlier[_last_at_or_before(earlier, at_rev)]
        if self._closed is None:
            return 0
        for g in reversed(self._closed):
            # A closed generation whose tombstone is at or before at_rev means the key was deleted then.
            if g._last >> _SUB_BITS <= at_rev:
                return 0
            earlier = g._earlier
            if earlier is not None and earlier[0] >> _SUB_BITS <= at_rev:
                return earlier[_last_at_or_before(earlier, at_rev)]
        return 0

    def _simple_at(self, at_rev: int) -> bool:
        """Whether the key is one live generation of one revision, at or below ``at_rev``: nothing to compact."""
        return self._earlier is None and self._closed is None and self.created != 0 and (
            self._modified >> _SUB_BITS <= at_rev
        )

    def _lives(self) -> list[list[int]]:
        """Every generation's packed revisions, oldest first, the live one (maybe empty) last."""
        closed = [g._packed() for g in self._closed] if self._closed else []
        live = Generation(self.created, self.version, self._earlier, self._modified)._packed()
        return [*closed, live]

    @staticmethod
    def _do_compact(lives: list[list[int]], at_rev: int, available: set[int]) -> tuple[int, int]:
        """Find the generation holding ``at_rev`` and mark its revision at ``at_rev`` as one to keep."""
        gen_idx = 0
        while gen_idx < len(lives) - 1:
            if lives[gen_idx][-1] >> _SUB_BITS > at_rev:
                break
            gen_idx += 1
        revs = lives[gen_idx]
        rev_idx = _last_at_or_before(revs, at_rev)
        if rev_idx >= 0:
            available.add(revs[rev_idx])
        return gen_idx, rev_idx

    def _compact(self, at_rev: int, available: set[int]) -> None:
        """Drop revisions below ``at_rev`` except the one visible at it; a deletion at or before it goes."""
        if self._simple_at(at_rev):
            available.add(self._modified)
            return
        lives = self._lives()
        gen_idx, rev_idx = self._do_compact(lives, at_rev, available)
        revs = lives[gen_idx]
        last = len(lives) - 1
        if revs:
            if rev_idx != -1:
                del revs[:rev_idx]
            if len(revs) == 1 and gen_idx != last:
                available.discard(revs[0])
                gen_idx += 1
        if gen_idx == 0 and (rev_idx <= 0 or not revs):
            return  # nothing dropped
        closed = self._closed or []
        kept: list[Generation] = []
        for i in range(gen_idx, last):
            g, r = closed[i], lives[i]
            kept.append(Generation(g.created, g.version, r[:-1] or None, r[-1]))
        self._closed = kept or None
        if gen_idx == last and self.created != 0:
            live = lives[last]
            self._earlier = live[:-1] or None

    def _keep(self, at_rev: int, available: set[int]) -> None:
        """Add the revisions a compaction at ``at_rev`` would keep, changing nothing."""
        if self._simple_at(at_rev):
            available.add(self._modified)
            return
        lives = self._lives()
        gen_idx, rev_idx = self._do_compact(lives, at_rev, available)
        revs = lives[gen_idx]
        if revs and rev_idx == len(revs) - 1 and gen_idx != len(lives) - 1:
            available.discard(revs[rev_idx])

    def compact(self, at_rev: int, available: set[Revision]) -> None:
        """Drop revisions below ``at_rev`` except the one visible at it; a deletion at or before it goes."""
        packed: set[int] = set()
        self._compact(at_rev, packed)
        available.update(_unpack(r) for r in packed)

    def keep(self, at_rev: int, available: set[Revision]) -> None:
        """Add the revisions a compaction at ``at_rev`` would keep, changing nothing."""
        packed: set[int] = set()
        self._keep(at_rev, packed)
        available.update(_unpack(r) for r in packed)


class TreeIndex:
    """All keys' indexes, ordered by key for range lookups (etcd's treeIndex over a B-tree).

    Keys the store replays on open (``restore``) arrive in revision order, not key order: they are put in
    order once, by one sort, at the first ordered read instead of one insertion each.
    """

    def __init__(self) -> None:
        self._keys: SortedList[bytes] = SortedList()
        self._unordered: list[bytes] = []
        """Keys restored but not yet in ``_keys``."""
        self._index: dict[bytes, KeyIndex] = {}

    def __len__(self) -> int:
        return len(self._index)

    def _ordered(self) -> SortedList[bytes]:
        if self._unordered:
            if self._keys:
                self._keys.update(self._unordered)
            else:
                self._keys = SortedList(self._unordered)
            self._unordered = []
        return self._keys

    def key_indexes(self) -> Iterator[KeyIndex]:
        return iter(self._index.values())

    def key_index(self, key: bytes) -> KeyIndex | None:
        return self._index.get(key)

    def get(self, key: bytes, at_rev: int) -> Revision | None:
        ki = self._index.get(key)
        if ki is None:
            return None
        packed = ki._get(at_rev)
        return Revision(packed >> _SUB_BITS, packed & _SUB_MASK) if packed else None

    def keys_in(self, key: bytes, end: bytes | None) -> Iterator[bytes]:
        """Keys in [key, end) in order; ``end`` None means just ``key``, empty means no upper bound."""
        if end is None:
            if key in self._index:
                yield key
            return
        keys = self._ordered()
        if end:
            if end > key:
                yield from keys.irange(key, end, inclusive=(True, False))
        else:
            yield from keys.irange(key)

    def range(self, key: bytes, end: bytes | None, at_rev: int) -> list[tuple[bytes, Revision]]:
        """(key, revision) of every key in the range that exists at ``at_rev``, in key order."""
        found: list[tuple[bytes, Revision]] = []
        index = self._index
        for k in self.keys_in(key, end):
            packed = index[k]._get(at_rev)
            if packed:
                found.append((k, Revision(packed >> _SUB_BITS, packed & _SUB_MASK)))
        return found

    def _add_key(self, key: bytes) -> KeyIndex:
        ki = KeyIndex(key)
        self._index[key] = ki
        self._ordered().add(key)
        return ki

    def _remove_key(self, key: bytes) -> None:
        del self._index[key]
        self._ordered().remove(key)

    def put(self, key: bytes, rev: Revision) -> Undo:
        ki = self._index.get(key)
        added = ki is None
        if ki is None:
            ki = self._add_key(key)
        previous = ki._modified
        ki._put(_pack(rev))

        def undo() -> None:
            assert ki is not None
            ki._undo_put(previous)
            if added:
                self._remove_key(key)

        return undo

    def tombstone(self, key: bytes, rev: Revision) -> Undo | None:
        """Delete ``key`` at ``rev``; None (and no change) if it is not live."""
        ki = self._index.get(key)
        if ki is None:
            return None
        previous = ki._modified
        if not ki._tombstone(_pack(rev)):
            return None
        return lambda: ki._undo_tombstone(previous)

    def restore(self, key: bytes, rev: Revision, created: int, version: int, tombstone: bool) -> None:
        """Replay one stored revision while rebuilding the index on open."""
        ki = self._index.get(key)
        if tombstone:
            if ki is not None:
                ki._tombstone(_pack(rev))
            return
        if ki is None:
            ki = KeyIndex(key)
            self._index[key] = ki
            self._unordered.append(key)
        if ki.created != 0:
            ki._put(_pack(rev))
        else:
            ki.restore(created, rev, version)

    def compact(self, at_rev: int) -> set[Revision]:
        """Compact every key at ``at_rev``; returns the revisions at or below it that must stay stored."""
        available: set[int] = set()
        emptied: list[bytes] = []
        for key, ki in self._index.items():
            ki._compact(at_rev, available)
            if ki.is_empty():
                emptied.append(key)
        if emptied:
            keys = self._ordered()
            for key in emptied:
                del self._index[key]
            if len(emptied) * 8 > len(keys):
                self._keys = SortedList(self._index)
            else:
                for key in emptied:
                    keys.remove(key)
        return {_unpack(r) for r in available}

    def keep(self, at_rev: int) -> set[Revision]:
        """The revisions a compaction at ``at_rev`` would keep."""
        available: set[int] = set()
        for ki in self._index.values():
            ki._keep(at_rev, available)
        return {_unpack(r) for r in available}

    def live_items(self) -> Iterator[tuple[bytes, Revision]]:
        """(key, latest revision) of every live key, in key order."""
        index = self._index
        for k in self._ordered():
            ki = index[k]
            if ki.created != 0:
                yield k, _unpack(ki._modified)
