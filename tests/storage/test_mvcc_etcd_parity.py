"""The store and the KV applier answer like real etcd 3.4: the same requests, sent to an etcd process and applied
to an MvccStore (after the gRPC layer's checks), give the same responses, the same errors and the same HashKV
numbers."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message

from etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from pyetcd import apply_kv, errors
from pyetcd.api.kv import check_put_request, check_txn_request
from storage.mvcc import (
    CompactedError,
    FutureRevisionError,
    LeaseNotFoundError,
    MvccError,
    MvccStore,
)

Compare = rpc_pb2.Compare
RangeRequest = rpc_pb2.RangeRequest

KEYS = [b"a", b"ab", b"b", b"c", b"d/1", b"d/2"]

# etcd's error text for each store error (the gRPC layer maps them the same way).
ERRORS: dict[type[MvccError], str] = {
    CompactedError: "etcdserver: mvcc: required revision has been compacted",
    FutureRevisionError: "etcdserver: mvcc: required revision is a future revision",
    LeaseNotFoundError: "etcdserver: requested lease not found",
}


class Etcd:
    """A client of a real etcd member."""

    def __init__(self, endpoint: str) -> None:
        self.channel = grpc.insecure_channel(endpoint)
        self.kv = rpc_pb2_grpc.KVStub(self.channel)  # type: ignore[no-untyped-call]
        self.lease = rpc_pb2_grpc.LeaseStub(self.channel)  # type: ignore[no-untyped-call]
        self.maintenance = rpc_pb2_grpc.MaintenanceStub(self.channel)  # type: ignore[no-untyped-call]


@pytest.fixture
def etcd(start_server: Callable[..., Any]) -> Iterator[Etcd]:
    server = start_server(binary="etcd", name="parity")
    client = Etcd(server.endpoint)
    try:
        yield client
    finally:
        client.channel.close()


def strip_headers(msg: Message) -> Message:
    """Drop what only a server knows (cluster, member, term); keep revisions."""
    out = type(msg)()
    out.CopyFrom(msg)

    def visit(m: Message) -> None:
        for field, value in m.ListFields():
            if field.name == "header":
                value.cluster_id = value.member_id = value.raft_term = 0
            elif field.message_type is not None:
                if field.is_repeated:
                    for item in value:
                        visit(item)
                else:
                    visit(value)

    visit(out)
    return out


class Ops:
    """Random requests that etcd's gRPC layer accepts (no duplicate keys in a txn)."""

    def __init__(self, rng: random.Random, leases: list[int]) -> None:
        self.rng = rng
        self.leases = leases

    def key(self) -> bytes:
        return self.rng.choice(KEYS)

    def range_end(self, key: bytes) -> bytes:
        return self.rng.choice([b"", b"", b"\x00", key + b"\xff", b"d0" if key < b"d0" else b""])

    def range(self, current: int) -> rpc_pb2.RangeRequest:
        r = self.rng
        key = r.choice([*KEYS, b"\x00"])
        req = RangeRequest(key=key, range_end=self.range_end(key) if key != b"\x00" else b"\x00")
        if r.random() < 0.4:
            req.revision = r.randint(0, current + 1)
        if r.random() < 0.3:
            req.limit = r.randint(1, 3)
        if r.random() < 0.3:
            req.sort_order = r.choice([0, 1, 2])  # type: ignore[assignment]
            req.sort_target = r.choice([0, 1, 2, 3, 4])  # type: ignore[assignment]
        req.keys_only = r.random() < 0.1
        req.count_only = r.random() < 0.1
        if r.random() < 0.2:
            setattr(req, r.choice(["min_mod_revision", "max_mod_revision", "min_create_revision",
                                   "max_create_revision"]), r.randint(1, current))
        return req

    def put(self, key: bytes | None = None) -> rpc_pb2.PutRequest:
        r = self.rng
        req = rpc_pb2.PutRequest(key=key or self.key(), value=b"v%d" % r.randint(0, 9))
        req.prev_kv = r.random() < 0.5
        if self.leases and r.random() < 0.3:
            req.lease = r.choice(self.leases)
        elif r.random() < 0.05:
            req.lease = 999
        if r.random() < 0.1:
            req.ignore_value = True
            req.value = b"" if r.random() < 0.8 else b"x"
        if r.random() < 0.1 and not req.lease:
            req.ignore_lease = True
        return req

    def delete(self, key: bytes | None = None) -> rpc_pb2.DeleteRangeRequest:
        key = key or self.key()
        prev_kv = self.rng.random() < 0.5
        return rpc_pb2.DeleteRangeRequest(key=key, range_end=self.range_end(key), prev_kv=prev_kv)

    def compare(self) -> rpc_pb2.Compare:
        r = self.rng
        target = r.choice([Compare.VALUE, Compare.VERSION, Compare.CREATE, Compare.MOD, Compare.LEASE])
        cmp = Compare(key=self.key(), target=target, result=r.choice([0, 1, 2, 3]))  # type: ignore[arg-type]
        if target == Compare.VALUE:
            cmp.value = b"v%d" % r.randint(0, 9)
        elif target == Compare.LEASE:
            cmp.lease = r.choice([0, *self.leases])
        else:
            setattr(cmp, {Compare.VERSION: "version", Compare.CREATE: "create_revision",
                          Compare.MOD: "mod_revision"}[target], r.randint(0, 12))
        if r.random() < 0.2:
            cmp.range_end = b"\x00"
        return cmp

    def branch(self, current: int, keys: list[bytes], depth: int) -> list[rpc_pb2.RequestOp]:
        r = self.rng
        ops = []
        for _ in range(r.randint(0, 3)):
            choice = r.random()
            if choice < 0.35 or not keys:
                ops.append(rpc_pb2.RequestOp(request_range=self.range(current)))
            elif choice < 0.7:
                ops.append(rpc_pb2.RequestOp(request_put=self.put(keys.pop())))
            elif choice < 0.9:
                delete = rpc_pb2.DeleteRangeRequest(key=keys.pop(), prev_kv=r.random() < 0.5)
                ops.append(rpc_pb2.RequestOp(request_delete_range=delete))
            elif depth < 2:
                ops.append(rpc_pb2.RequestOp(request_txn=self.txn(current, keys, depth + 1)))
        return ops

    def txn(self, current: int, keys: list[bytes] | None = None, depth: int = 0) -> rpc_pb2.TxnRequest:
        """Each key is written at most once across the whole txn, so etcd's duplicate check never fires."""
        if keys is None:
            keys = self.rng.sample(KEYS, len(KEYS))
        return rpc_pb2.TxnRequest(
            compare=[self.compare() for _ in range(self.rng.randint(0, 2))],
            success=self.branch(current, keys, depth),
            failure=self.branch(current, keys, depth),
        )


def etcd_call(fn: Callable[[], Message]) -> Message | str:
    try:
        return fn()
    except grpc.RpcError as e:
        return str(e.details())


def store_call(fn: Callable[[], Message]) -> Message | str:
    try:
        return fn()
    except MvccError as e:
        return ERRORS.get(type(e), repr(e))
    except errors.EtcdError as e:
        return e.message


def checked_put(batch: Any, put: rpc_pb2.PutRequest) -> rpc_pb2.PutResponse:
    check_put_request(put)
    return apply_kv.batch_put(batch, put)


def checked_txn(batch: Any, txn: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
    check_txn_request(txn, max_txn_ops=128)
    return apply_kv.batch_txn(batch, txn)


class Step:
    """One random request sent to both; returns (ours, theirs, what was sent)."""

    def __init__(self, rng: random.Random, store: MvccStore, etcd: Etcd) -> None:
        self.rng = rng
        self.store = store
        self.etcd = etcd
        self.leases: list[int] = []
        self.ops = Ops(rng, self.leases)

    def write(self, fn: Callable[[Any], Message | None], empty: Message | None = None) -> Message | str:
        """Apply in a batch of its own; requests that answer nothing (compact, leases) answer ``empty``."""

        def apply() -> Message:
            with self.store.write(self.store.consistent_index + 1) as batch:
                answer = fn(batch)
            assert answer is not None or empty is not None
            return answer if answer is not None else empty  # type: ignore[return-value]

        return store_call(apply)

    def run(self, step: int) -> tuple[Message | str, Message | str, object]:
        rng, store, etcd, ops = self.rng, self.store, self.etcd, self.ops
        current = store.current_revision
        choice = rng.random()
        if choice < 0.3:
            put = ops.put()
            return self.write(lambda b: checked_put(b, put)), etcd_call(lambda: etcd.kv.Put(put)), put
        if choice < 0.45:
            delete = ops.delete()
            ours = self.write(lambda b: apply_kv.batch_delete_range(b, delete))
            return ours, etcd_call(lambda: etcd.kv.DeleteRange(delete)), delete
        if choice < 0.7:
            txn = ops.txn(current)
            return self.write(lambda b: checked_txn(b, txn)), etcd_call(lambda: etcd.kv.Txn(txn)), txn
        if choice < 0.88:
            req = ops.range(current)
            theirs = etcd_call(lambda: etcd.kv.Range(req))
            if isinstance(theirs, Message):
                theirs.ClearField("header")
            return store_call(lambda: apply_kv.read_range(store, req)), theirs, req
        if choice < 0.93:
            compact = rpc_pb2.CompactionRequest(
                revision=rng.randint(max(store.compact_revision, 1), current), physical=True
            )
            ours = self.write(lambda b: b.compact(compact.revision), rpc_pb2.CompactionResponse())
            theirs = etcd_call(lambda: etcd.kv.Compact(compact))
            if isinstance(theirs, Message):
                theirs.ClearField("header")
            return ours, theirs, compact
        if choice < 0.97 or not self.leases:
            grant = rpc_pb2.LeaseGrantRequest(ID=100 + step, TTL=600)
            self.leases.append(grant.ID)
            etcd.lease.LeaseGrant(grant)
            ours = self.write(lambda b: b.lease_grant(grant.ID, grant.TTL), rpc_pb2.LeaseGrantResponse())
            return ours, rpc_pb2.LeaseGrantResponse(), grant
        revoke = rpc_pb2.LeaseRevokeRequest(ID=self.leases.pop(rng.randrange(len(self.leases))))
        etcd.lease.LeaseRevoke(revoke)
        ours = self.write(lambda b: b.lease_revoke(revoke.ID), rpc_pb2.LeaseRevokeResponse())
        return ours, rpc_pb2.LeaseRevokeResponse(), revoke


@pytest.mark.parametrize("seed", [1, 2])
def test_random_requests_answer_like_etcd(etcd: Etcd, tmp_path: Path, seed: int) -> None:
    with MvccStore(tmp_path / "db") as store:
        steps = Step(random.Random(seed), store, etcd)
        for step in range(150):
            ours, theirs, req = steps.run(step)
            if isinstance(theirs, Message):
                theirs = strip_headers(theirs)
            assert ours == theirs, f"step {step}: {req}"
            hash_kv = etcd.maintenance.HashKV(rpc_pb2.HashKVRequest(revision=0))
            ours_hash, compact_rev, _ = store.hash_kv(0)
            assert (ours_hash, compact_rev, store.current_revision) == (
                hash_kv.hash, hash_kv.compact_revision, hash_kv.header.revision), f"step {step}: {req}"
