"""The key index against a plain model: every change of every key kept, answers computed by scanning them.

Puts, deletions, their undos, compactions and rebuilds (restore, as the store replays its revisions on open)
in any order; after each step reads at every uncompacted revision must agree with the model.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from storage.mvcc.index import TreeIndex, Undo
from storage.mvcc.revision import Revision

KEYS = [b"a", b"a/1", b"a/2", b"b", b"c"]

Change = tuple[Revision, bytes, bool]
"""(revision, key, is a deletion)."""


class IndexMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.index = TreeIndex()
        self.changes: list[Change] = []
        self.main = 1
        self.compacted = 0

    def visible(self, key: bytes, at_rev: int) -> Revision | None:
        """The model's answer: the key's latest change at or before at_rev, unless it is a deletion."""
        found: Change | None = None
        for change in self.changes:
            if change[1] == key and change[0].main <= at_rev:
                found = change
        return found[0] if found is not None and not found[2] else None

    def live(self, key: bytes) -> bool:
        return self.visible(key, self.main) is not None

    def _next(self, subs: int) -> list[Revision]:
        self.main += 1
        return [Revision(self.main, sub) for sub in range(subs)]

    @rule(keys=st.lists(st.sampled_from(KEYS), min_size=1, max_size=3), undo=st.booleans())
    def txn(self, keys: list[bytes], undo: bool) -> None:
        """One txn of puts and deletions (a deletion of a key that is not live changes nothing)."""
        revs = self._next(len(keys))
        undos: list[Undo] = []
        start = len(self.changes)
        for i, (key, rev) in enumerate(zip(keys, revs, strict=True)):
            if i % 2:
                was_live = self.live(key)
                u = self.index.tombstone(key, rev)
                assert (u is not None) == was_live
                if u is not None:
                    undos.append(u)
                    self.changes.append((rev, key, True))
            else:
                undos.append(self.index.put(key, rev))
                self.changes.append((rev, key, False))
        if undo:
            for u in reversed(undos):
                u()
            del self.changes[start:]
            self.main -= 1

    @precondition(lambda self: self.compacted < self.main)
    @rule(data=st.data())
    def compact(self, data: st.DataObject) -> None:
        at = data.draw(st.integers(self.compacted + 1, self.main), label="compact at")
        expected = {rev for key in KEYS if (rev := self.visible(key, at)) is not None}
        assert self.index.keep(at) == expected
        assert self.index.compact(at) == expected
        self.compacted = at

    @rule()
    def rebuild(self) -> None:
        """Replay what the store would still hold: changes above the compaction and the kept ones."""
        kept = {rev for key in KEYS if (rev := self.visible(key, self.compacted)) is not None}
        index = TreeIndex()
        created: dict[bytes, int] = {}
        version: dict[bytes, int] = {}
        for rev, key, deleted in sorted(self.changes):
            if deleted:
                created.pop(key, None)
                version.pop(key, None)
            else:
                created.setdefault(key, rev.main)
                version[key] = version.get(key, 0) + 1
            if rev.main > self.compacted or rev in kept:
                index.restore(key, rev, created.get(key, 0), version.get(key, 0), deleted)
        self.index = index

    @invariant()
    def reads_agree(self) -> None:
        for at in range(max(self.compacted, 1), self.main + 1):
            for key in KEYS:
                assert self.index.get(key, at) == self.visible(key, at), (key, at)
            expected = [(k, r) for k in sorted(KEYS) if (r := self.visible(k, at)) is not None]
            assert self.index.range(b"", b"", at) == expected
            assert self.index.range(b"a/", b"a0", at) == [(k, r) for k, r in expected if k.startswith(b"a/")]
        live = [(k, r) for k in sorted(KEYS) if (r := self.visible(k, self.main)) is not None]
        assert list(self.index.live_items()) == live
        for key in KEYS:
            ki = self.index.key_index(key)
            if ki is not None and ki.is_live():
                history = [c for c in self.changes if c[1] == key]
                since = max((i for i, c in enumerate(history) if c[2]), default=-1) + 1
                assert ki.generations[-1].created == history[since][0].main
                assert ki.generations[-1].version == len(history) - since


TestIndexAgainstModel = IndexMachine.TestCase
TestIndexAgainstModel.settings = settings(max_examples=150, stateful_step_count=25, deadline=None)
