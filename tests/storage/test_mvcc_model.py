"""The MVCC store against a plain in-memory model of etcd's keyspace: every revision's whole state kept as a
dict. Puts, deletes (of ranges too), txns, batches, compactions, reads at old revisions and restarts."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from etcdpb.etcdserverpb import rpc_pb2
from pyetcd import apply_kv
from storage.mvcc import CompactedError, FutureRevisionError, MvccStore

KEYS = [b"a", b"a/1", b"a/2", b"b", b"c"]
keys = st.sampled_from(KEYS)
values = st.binary(max_size=3)
# (key, range_end): one key, a prefix, or every key from key on
ranges = st.one_of(
    keys.map(lambda k: (k, b"")),
    st.just((b"a", b"b")),
    st.just((b"a/", b"a0")),
    keys.map(lambda k: (k, b"\x00")),
)


@dataclass(frozen=True)
class Kv:
    value: bytes
    create_revision: int
    mod_revision: int
    version: int


State = dict[bytes, Kv]


def in_range(key: bytes, start: bytes, end: bytes) -> bool:
    if not end:
        return key == start
    return key >= start and (end == b"\x00" or key < end)


class Model:
    """etcd's keyspace the slow, obvious way: a full copy of the state at every revision."""

    def __init__(self) -> None:
        self.revision = 1
        self.compacted = 0
        self.states: dict[int, State] = {1: {}}

    def now(self) -> State:
        return self.states[self.revision]

    def txn(self, writes: list[tuple[str, bytes, bytes, bytes]]) -> None:
        """Apply ('put', key, value, _) / ('del', key, end, _) writes as one transaction."""
        state = dict(self.now())
        main = self.revision + 1
        changed = False
        for kind, key, arg, _ in writes:
            if kind == "put":
                old = state.get(key)
                state[key] = (
                    replace(old, value=arg, mod_revision=main, version=old.version + 1)
                    if old
                    else Kv(arg, main, main, 1)
                )
                changed = True
            else:
                doomed = [k for k in state if in_range(k, key, arg)]
                for k in doomed:
                    del state[k]
                changed = changed or bool(doomed)
        if changed:
            self.revision = main
            self.states[main] = state

    def compact(self, revision: int) -> None:
        self.compacted = revision
        for rev in [r for r in self.states if r < revision]:
            del self.states[rev]


def as_tuples(resp: rpc_pb2.RangeResponse) -> list[tuple[bytes, Kv]]:
    return [(kv.key, Kv(kv.value, kv.create_revision, kv.mod_revision, kv.version)) for kv in resp.kvs]


def expected(state: State, start: bytes, end: bytes) -> list[tuple[bytes, Kv]]:
    return sorted((k, kv) for k, kv in state.items() if in_range(k, start, end))


def write_op(kind: str, key: bytes, arg: bytes) -> rpc_pb2.RequestOp:
    if kind == "put":
        return rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=arg))
    return rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=key, range_end=arg))


writes = st.lists(
    st.one_of(
        st.tuples(st.just("put"), keys, values, st.just(b"")),
        ranges.map(lambda r: ("del", r[0], r[1], b"")),
    ),
    max_size=4,
)


class MvccMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="mvcc-model-"))
        self.store = MvccStore(self.dir / "db")
        self.model = Model()
        self.applied = 0

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def batch(self) -> object:
        self.applied += 1
        return self.store.write(self.applied)

    @rule(key=keys, value=values)
    def put(self, key: bytes, value: bytes) -> None:
        with self.batch() as b:  # type: ignore[attr-defined]
            resp = apply_kv.batch_put(b, rpc_pb2.PutRequest(key=key, value=value))
        self.model.txn([("put", key, value, b"")])
        assert resp.header.revision == self.model.revision

    @rule(r=ranges)
    def delete(self, r: tuple[bytes, bytes]) -> None:
        before = len(expected(self.model.now(), *r))
        with self.batch() as b:  # type: ignore[attr-defined]
            resp = apply_kv.batch_delete_range(b, rpc_pb2.DeleteRangeRequest(key=r[0], range_end=r[1]))
        self.model.txn([("del", r[0], r[1], b"")])
        assert resp.deleted == before

    @rule(ops=st.lists(st.tuples(st.sampled_from(["put", "del"]), keys, values), max_size=4))
    def several_requests_in_one_batch(self, ops: list[tuple[str, bytes, bytes]]) -> None:
        with self.batch() as b:  # type: ignore[attr-defined]
            for kind, key, value in ops:
                if kind == "put":
                    apply_kv.batch_put(b, rpc_pb2.PutRequest(key=key, value=value))
                else:
                    apply_kv.batch_delete_range(b, rpc_pb2.DeleteRangeRequest(key=key))
        for kind, key, value in ops:
            self.model.txn([(kind, key, value if kind == "put" else b"", b"")])

    @rule(cmp_key=keys, version=st.integers(0, 3), success=writes, failure=writes)
    def txn(
        self,
        cmp_key: bytes,
        version: int,
        success: list[tuple[str, bytes, bytes, bytes]],
        failure: list[tuple[str, bytes, bytes, bytes]],
    ) -> None:
        cmp = rpc_pb2.Compare(
            key=cmp_key, target=rpc_pb2.Compare.VERSION, result=rpc_pb2.Compare.EQUAL, version=version
        )
        req = rpc_pb2.TxnRequest(
            compare=[cmp],
            success=[write_op(kind, key, arg) for kind, key, arg, _ in success],
            failure=[write_op(kind, key, arg) for kind, key, arg, _ in failure],
        )
        with self.batch() as b:  # type: ignore[attr-defined]
            resp = apply_kv.batch_txn(b, req)
        current = self.model.now().get(cmp_key)
        succeeded = (current.version if current else 0) == version
        self.model.txn(success if succeeded else failure)
        assert resp.succeeded == succeeded
        assert resp.header.revision == self.model.revision

    @precondition(lambda self: self.model.compacted < self.model.revision)
    @rule(data=st.data())
    def compact(self, data: st.DataObject) -> None:
        revision = data.draw(st.integers(self.model.compacted + 1, self.model.revision), label="compact at")
        with self.batch() as b:  # type: ignore[attr-defined]
            b.compact(revision)
        self.model.compact(revision)

    @rule(data=st.data(), r=ranges)
    def range_at_an_old_revision(self, data: st.DataObject, r: tuple[bytes, bytes]) -> None:
        low = max(self.model.compacted, 1)
        revision = data.draw(st.integers(low, self.model.revision), label="revision")
        resp = apply_kv.read_range(self.store, rpc_pb2.RangeRequest(key=r[0], range_end=r[1], revision=revision))
        want = expected(self.model.states[revision], *r)
        assert as_tuples(resp) == want
        assert resp.count == len(want)

    @precondition(lambda self: self.model.compacted > 1)
    @rule()
    def range_below_the_compaction_fails(self) -> None:
        with pytest.raises(CompactedError):
            apply_kv.read_range(self.store, rpc_pb2.RangeRequest(key=b"a", revision=self.model.compacted - 1))

    @rule()
    def range_in_the_future_fails(self) -> None:
        with pytest.raises(FutureRevisionError):
            apply_kv.read_range(self.store, rpc_pb2.RangeRequest(key=b"a", revision=self.model.revision + 1))

    @rule()
    def restart(self) -> None:
        # As in etcd, HashKV counts revisions a compaction has not deleted yet when nothing is live at
        # the hashed revision: compare once the compaction is on disk, before and after the restart.
        assert self.store.wait_compacted(self.model.compacted, timeout=10) or self.model.compacted == 0
        hash_kv = self.store.hash_kv(0)
        self.store.close()
        self.store = MvccStore(self.dir / "db")
        assert self.store.wait_compacted(self.model.compacted, timeout=10) or self.model.compacted == 0
        assert self.store.hash_kv(0) == hash_kv
        assert self.store.consistent_index == self.applied

    @invariant()
    def revisions_match(self) -> None:
        assert self.store.current_revision == self.model.revision
        assert self.store.compact_revision == self.model.compacted

    @invariant()
    def everything_matches_now(self) -> None:
        resp = apply_kv.read_range(self.store, rpc_pb2.RangeRequest(key=b"\x00", range_end=b"\x00"))
        assert as_tuples(resp) == expected(self.model.now(), b"\x00", b"\x00")


MvccMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_store_matches_the_model = MvccMachine.TestCase
