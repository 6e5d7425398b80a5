"""The KV applier over the store's transactions: the one definition of a read-only txn, and read-only txns
answered from a read view rather than a write batch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from etcdpb.etcdserverpb import rpc_pb2
from pyetcd import apply_kv
from storage.mvcc import MvccStore

RequestOp = rpc_pb2.RequestOp


def get(key: bytes) -> RequestOp:
    return RequestOp(request_range=rpc_pb2.RangeRequest(key=key))


def put(key: bytes) -> RequestOp:
    return RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=b"v"))


def nested(*ops: RequestOp) -> RequestOp:
    return RequestOp(request_txn=rpc_pb2.TxnRequest(success=list(ops)))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MvccStore]:
    s = MvccStore(tmp_path / "db")
    try:
        yield s
    finally:
        s.close()


def test_a_txn_is_read_only_when_no_branch_at_any_depth_writes() -> None:
    assert apply_kv.is_txn_read_only(rpc_pb2.TxnRequest(success=[get(b"a")], failure=[nested(get(b"b"))]))
    assert apply_kv.is_txn_read_only(rpc_pb2.TxnRequest())
    assert not apply_kv.is_txn_read_only(rpc_pb2.TxnRequest(success=[get(b"a")], failure=[put(b"b")]))
    assert not apply_kv.is_txn_read_only(rpc_pb2.TxnRequest(success=[nested(get(b"a"), nested(put(b"b")))]))
    delete = RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=b"a"))
    assert not apply_kv.is_txn_read_only(rpc_pb2.TxnRequest(failure=[delete]))


def test_a_read_only_txn_is_answered_from_a_read_view_while_a_write_batch_is_open(store: MvccStore) -> None:
    with store.write(1) as batch:
        apply_kv.batch_put(batch, rpc_pb2.PutRequest(key=b"a", value=b"1"))
    compare = rpc_pb2.Compare(key=b"a", target=rpc_pb2.Compare.VALUE, result=rpc_pb2.Compare.EQUAL, value=b"1")
    txn = rpc_pb2.TxnRequest(compare=[compare], success=[get(b"a"), nested(get(b"a"))])
    with store.write(2) as batch:
        apply_kv.batch_put(batch, rpc_pb2.PutRequest(key=b"a", value=b"uncommitted"))
        # A write batch would wait for this one (or refuse); the read view sees what was committed.
        answer = apply_kv.read_txn(store, txn)
    assert answer.succeeded
    assert answer.header.revision == 2
    assert [kv.value for kv in answer.responses[0].response_range.kvs] == [b"1"]
    assert [kv.value for kv in answer.responses[1].response_txn.responses[0].response_range.kvs] == [b"1"]
    assert store.current_revision == 3


def test_a_txn_that_writes_is_not_answered_from_a_read_view(store: MvccStore) -> None:
    with pytest.raises(ValueError, match="read-only"):
        apply_kv.read_txn(store, rpc_pb2.TxnRequest(success=[put(b"a")]))
    assert store.current_revision == 1
