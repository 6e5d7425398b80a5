"""etcd's KV requests (Range, Put, DeleteRange, Txn) applied to one store transaction, as etcd's applier does.

The store (storage/mvcc) knows keys, revisions and leases; this module knows the client's requests: their
flags, compares, branches and checks. Follows etcdserver/apply.go of etcd 3.4: sorting and revision filters
happen after the read and before the limit; ``count`` is the number of keys in the range at the revision read;
a Txn evaluates every comparison of the taken branches (nested ones included) against the state before it,
checks its requests before changing anything, and then applies them in one write transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from operator import attrgetter

from etcdpb.etcdserverpb import rpc_pb2
from etcdpb.mvccpb import kv_pb2
from pyetcd import errors
from storage.mvcc import (
    CompactedError,
    FutureRevisionError,
    LeaseNotFoundError,
    MvccError,
    MvccStore,
    TxnRead,
    TxnWrite,
    WriteBatch,
    range_end_of,
)

RangeRequest = rpc_pb2.RangeRequest
Compare = rpc_pb2.Compare

_SORT_KEYS: dict[int, Callable[[kv_pb2.KeyValue], object]] = {
    RangeRequest.KEY: attrgetter("key"),
    RangeRequest.VERSION: attrgetter("version"),
    RangeRequest.CREATE: attrgetter("create_revision"),
    RangeRequest.MOD: attrgetter("mod_revision"),
    RangeRequest.VALUE: attrgetter("value"),
}


def apply_range(
    view: TxnRead, req: rpc_pb2.RangeRequest, *, with_header: bool = False
) -> rpc_pb2.RangeResponse:
    limit = req.limit
    if (
        req.sort_order != RangeRequest.NONE
        or req.min_mod_revision
        or req.max_mod_revision
        or req.min_create_revision
        or req.max_create_revision
    ):
        limit = 0  # everything is needed to sort or filter; the limit applies afterwards
    if limit > 0:
        limit += 1  # one more than asked tells whether there is more
    rr = view.range_keys(req.key, range_end_of(req.range_end), req.revision, limit, req.count_only)
    kvs = rr.kvs
    if req.max_mod_revision:
        kvs = [kv for kv in kvs if kv.mod_revision <= req.max_mod_revision]
    if req.min_mod_revision:
        kvs = [kv for kv in kvs if kv.mod_revision >= req.min_mod_revision]
    if req.max_create_revision:
        kvs = [kv for kv in kvs if kv.create_revision <= req.max_create_revision]
    if req.min_create_revision:
        kvs = [kv for kv in kvs if kv.create_revision >= req.min_create_revision]

    sort_order = req.sort_order
    if req.sort_target != RangeRequest.KEY and sort_order == RangeRequest.NONE:
        # Reads come back in key order already; another target with no order means ascending (as etcd).
        sort_order = RangeRequest.ASCEND
    if sort_order != RangeRequest.NONE:
        kvs.sort(key=_SORT_KEYS[req.sort_target], reverse=sort_order == RangeRequest.DESCEND)  # type: ignore[arg-type]

    resp = rpc_pb2.RangeResponse(count=rr.count)
    if req.limit > 0 and len(kvs) > req.limit:
        kvs = kvs[: req.limit]
        resp.more = True
    if req.keys_only:
        for kv in kvs:
            kv.ClearField("value")
    resp.kvs.extend(kvs)
    if with_header:
        resp.header.revision = rr.rev
    return resp


def check_put(view: TxnRead, req: rpc_pb2.PutRequest) -> None:
    """Refuse a put that could not apply, before anything changes (etcd's checkRequestPut).

    Contradictory flags never get here: the gRPC layer refuses them (pyetcd/api/kv.py).
    """
    if (req.ignore_value or req.ignore_lease) and not view.range_keys(req.key, None).kvs:
        raise errors.ErrGRPCKeyNotFound
    if req.lease and not view.lease_exists(req.lease):
        raise LeaseNotFoundError(req.lease)


def apply_put(tw: TxnWrite, req: rpc_pb2.PutRequest) -> rpc_pb2.PutResponse:
    # A lone put checks its lease before the key (a txn's checks, in check_put, go the other way round).
    if req.lease and not tw.lease_exists(req.lease):
        raise LeaseNotFoundError(req.lease)
    prev: kv_pb2.KeyValue | None = None
    if req.ignore_value or req.ignore_lease or req.prev_kv:
        kvs = tw.range_keys(req.key, None).kvs
        prev = kvs[0] if kvs else None
    if (req.ignore_value or req.ignore_lease) and prev is None:
        raise errors.ErrGRPCKeyNotFound
    value = prev.value if req.ignore_value and prev is not None else req.value
    lease_id = prev.lease if req.ignore_lease and prev is not None else req.lease
    resp = rpc_pb2.PutResponse()
    resp.header.revision = tw.put(req.key, value, lease_id)
    if req.prev_kv and prev is not None:
        resp.prev_kv.CopyFrom(prev)
    return resp


def apply_delete_range(tw: TxnWrite, req: rpc_pb2.DeleteRangeRequest) -> rpc_pb2.DeleteRangeResponse:
    end = range_end_of(req.range_end)
    resp = rpc_pb2.DeleteRangeResponse()
    if req.prev_kv:
        resp.prev_kvs.extend(tw.range_keys(req.key, end).kvs)
    resp.deleted = tw.delete_range(req.key, end)
    resp.header.revision = tw.rev
    return resp


# --- Txn ---


def is_txn_read_only(req: rpc_pb2.TxnRequest) -> bool:
    """Whether no operation on either branch, nested txns included, can write.

    The one definition of a read-only txn: it is served from a read view without a Raft round, it is
    allowed under the NOSPACE alarm, and it is never refused for quota.
    """
    for op in (*req.success, *req.failure):
        kind = op.WhichOneof("request")
        if kind in ("request_put", "request_delete_range"):
            return False
        if kind == "request_txn" and not is_txn_read_only(op.request_txn):
            return False
    return True


def is_txn_serializable(req: rpc_pb2.TxnRequest) -> bool:
    """Whether a read-only txn asks only for serializable ranges (then it needs no ReadIndex)."""
    ops = [*req.success, *req.failure]
    return bool(ops) and all(op.WhichOneof("request") == "request_range" and op.request_range.serializable
                             for op in ops)


def compare_kv(c: rpc_pb2.Compare, kv: kv_pb2.KeyValue) -> bool:
    result: int
    if c.target == Compare.VALUE:
        result = (kv.value > c.value) - (kv.value < c.value)
    else:
        have, want = {
            Compare.VERSION: (kv.version, c.version),
            Compare.CREATE: (kv.create_revision, c.create_revision),
            Compare.MOD: (kv.mod_revision, c.mod_revision),
            Compare.LEASE: (kv.lease, c.lease),
        }.get(c.target, (0, 0))
        result = (have > want) - (have < want)
    if c.result == Compare.EQUAL:
        return result == 0
    if c.result == Compare.NOT_EQUAL:
        return result != 0
    if c.result == Compare.GREATER:
        return result > 0
    if c.result == Compare.LESS:
        return result < 0
    return True


def apply_compare(view: TxnRead, c: rpc_pb2.Compare) -> bool:
    """Every key in the compare's range must satisfy it; a missing key has zero fields and no value."""
    try:
        kvs = view.range_keys(c.key, range_end_of(c.range_end)).kvs
    except MvccError:
        return False
    if not kvs:
        # A missing value cannot be told from an empty one, so value compares on missing keys fail.
        return c.target != Compare.VALUE and compare_kv(c, kv_pb2.KeyValue())
    return all(compare_kv(c, kv) for kv in kvs)


def compare_to_path(view: TxnRead, req: rpc_pb2.TxnRequest, path: list[bool]) -> list[bool]:
    """The branch taken by this txn and by every nested txn on the taken branches, in pre-order."""
    succeeded = all(apply_compare(view, c) for c in req.compare)
    path.append(succeeded)
    for op in req.success if succeeded else req.failure:
        if op.WhichOneof("request") == "request_txn":
            compare_to_path(view, op.request_txn, path)
    return path


def _taken_ops(req: rpc_pb2.TxnRequest, path: Iterator[bool]) -> Iterator[rpc_pb2.RequestOp]:
    """The non-txn operations on the taken branches, in the order they apply."""
    for op in req.success if next(path) else req.failure:
        if op.WhichOneof("request") == "request_txn":
            yield from _taken_ops(op.request_txn, path)
        else:
            yield op


def check_range(view: TxnRead, req: rpc_pb2.RangeRequest) -> None:
    if req.revision == 0:
        return
    if req.revision > view.rev:
        raise FutureRevisionError(view.rev)
    if req.revision < view.first_rev:
        raise CompactedError(view.first_rev)


def check_txn(view: TxnRead, req: rpc_pb2.TxnRequest, path: list[bool]) -> None:
    """Refuse, before any change, a txn one of whose requests could not apply (etcd's checkRequests)."""
    for op in _taken_ops(req, iter(path)):
        if op.WhichOneof("request") == "request_put":
            check_put(view, op.request_put)
    for op in _taken_ops(req, iter(path)):
        if op.WhichOneof("request") == "request_range":
            check_range(view, op.request_range)


def apply_txn(txn: TxnRead, req: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
    """Apply a txn in ``txn`` (which must not have changed anything yet): one revision for all its writes.

    A read-only txn may run in a read transaction; any other needs a write transaction.
    """
    path = compare_to_path(txn, req, [])
    check_txn(txn, req, path)
    resp = rpc_pb2.TxnResponse()
    _apply_branch(txn, req, iter(path), resp)
    resp.header.revision = txn.rev
    return resp


def _writer(txn: TxnRead) -> TxnWrite:
    if not isinstance(txn, TxnWrite):
        raise TypeError("a txn that writes needs a write transaction")
    return txn


def _apply_branch(
    tw: TxnRead, req: rpc_pb2.TxnRequest, path: Iterator[bool], resp: rpc_pb2.TxnResponse
) -> None:
    succeeded = next(path)
    resp.succeeded = succeeded
    for op in req.success if succeeded else req.failure:
        which = op.WhichOneof("request")
        out = resp.responses.add()
        if which == "request_range":
            out.response_range.CopyFrom(apply_range(tw, op.request_range, with_header=True))
        elif which == "request_put":
            out.response_put.CopyFrom(apply_put(_writer(tw), op.request_put))
        elif which == "request_delete_range":
            out.response_delete_range.CopyFrom(apply_delete_range(_writer(tw), op.request_delete_range))
        elif which == "request_txn":
            out.response_txn.header.SetInParent()
            _apply_branch(tw, op.request_txn, path, out.response_txn)


# --- the requests as one store transaction each ---


def read_range(store: MvccStore, req: rpc_pb2.RangeRequest, *, with_header: bool = False) -> rpc_pb2.RangeResponse:
    """etcd's Range on the committed state; `with_header` puts the revision it read at in the header
    (as etcd's applier does), the rest of the header is left to the API layer."""
    with store.read() as view:
        return apply_range(view, req, with_header=with_header)


def read_txn(store: MvccStore, req: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
    """A read-only Txn on the committed state, from one read view (no write transaction, no Raft round)."""
    if not is_txn_read_only(req):
        raise ValueError("only a read-only txn is answered from a read view")
    with store.read() as view, store.counters.txn():
        return apply_txn(view, req)


def batch_range(batch: WriteBatch, req: rpc_pb2.RangeRequest) -> rpc_pb2.RangeResponse:
    """etcd's Range as ``batch`` has left the store so far (header left unset)."""
    with batch.read() as view:
        return apply_range(view, req)


def batch_put(batch: WriteBatch, req: rpc_pb2.PutRequest) -> rpc_pb2.PutResponse:
    return batch.write_txn(lambda tw: apply_put(tw, req), check_quota=True)


def batch_delete_range(batch: WriteBatch, req: rpc_pb2.DeleteRangeRequest) -> rpc_pb2.DeleteRangeResponse:
    return batch.write_txn(lambda tw: apply_delete_range(tw, req), check_quota=False)


def batch_txn(batch: WriteBatch, req: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
    with batch.counters.txn():
        return batch.write_txn(lambda tw: apply_txn(tw, req), check_quota=not is_txn_read_only(req))
