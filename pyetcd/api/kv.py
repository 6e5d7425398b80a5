"""The KV service: check each request as etcd's v3rpc layer does and ask the server (handlers.py answers)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from pyetcd import errors
from pyetcd.api.server_api import EtcdServerApi

Interval = tuple[bytes, bytes]
"""A half-open key interval [begin, end) deleted by a txn operation."""

MAX_TXN_NESTING = 48
"""How deep txns may nest. A deeper one, wrapped in its Raft entry, would pass the 100 message
levels the protobuf decoder accepts, and no member could apply it. etcd's own bound comes from
--max-txn-ops (each level uses up one operation); past either bound the answer is the same."""

SORT_ORDERS = frozenset(rpc_pb2.RangeRequest.SortOrder.values())
SORT_TARGETS = frozenset(rpc_pb2.RangeRequest.SortTarget.values())


TXN_BRANCH_FIELDS = (rpc_pb2.TxnRequest.SUCCESS_FIELD_NUMBER, rpc_pb2.TxnRequest.FAILURE_FIELD_NUMBER)
REQUEST_TXN_FIELD = rpc_pb2.RequestOp.REQUEST_TXN_FIELD_NUMBER


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if byte < 0x80:
            return value, pos


def encoded_txn_nesting(raw: bytes) -> int:
    """How deep txns nest in an encoded TxnRequest, read from the wire format alone.

    The protobuf decoder refuses messages nested past its limit without saying why; this
    tells a too-deep txn (etcd: "too many operations") from bytes that are simply corrupt.
    Returns -1 when the bytes are not a well-formed message.
    """
    deepest = 0
    pending = [(raw, 0, False)]  # (bytes, txn depth, is a RequestOp)
    while pending:
        data, depth, is_op = pending.pop()
        deepest = max(deepest, depth)
        pos = 0
        try:
            while pos < len(data):
                tag, pos = _read_varint(data, pos)
                field, wire_type = tag >> 3, tag & 7
                if wire_type == 0:
                    _, pos = _read_varint(data, pos)
                elif wire_type in (1, 5):
                    pos += 8 if wire_type == 1 else 4
                elif wire_type == 2:
                    length, pos = _read_varint(data, pos)
                    body = data[pos:pos + length]
                    pos += length
                    if not is_op and field in TXN_BRANCH_FIELDS:
                        pending.append((body, depth, True))
                    elif is_op and field == REQUEST_TXN_FIELD:
                        pending.append((body, depth + 1, False))
                else:
                    return -1
        except ValueError:
            return -1
        if pos > len(data):
            return -1
    return deepest


def explain_undecodable_txn(raw: bytes) -> errors.EtcdError | None:
    """etcd's answer for a txn our decoder refused because it nests too deep, if that is why."""
    return errors.ErrGRPCTooManyOps if encoded_txn_nesting(raw) > MAX_TXN_NESTING else None


def check_range_request(req: rpc_pb2.RangeRequest) -> None:
    if not req.key:
        raise errors.ErrGRPCEmptyKey


def normalize_sort(req: rpc_pb2.RangeRequest) -> None:
    """An unknown sort order or target means "unsorted": the answer comes in key order.

    etcd skips sorting for an order it does not know; for a target it does not know it
    would sort with no comparator and crash, so that case is answered unsorted too.
    """
    if req.sort_order not in SORT_ORDERS or req.sort_target not in SORT_TARGETS:
        req.sort_order = rpc_pb2.RangeRequest.NONE
        req.sort_target = rpc_pb2.RangeRequest.KEY


def normalize_txn_sorts(req: rpc_pb2.TxnRequest) -> None:
    for op in [*req.success, *req.failure]:
        kind = op.WhichOneof("request")
        if kind == "request_range":
            normalize_sort(op.request_range)
        elif kind == "request_txn":
            normalize_txn_sorts(op.request_txn)


def check_put_request(req: rpc_pb2.PutRequest) -> None:
    if not req.key:
        raise errors.ErrGRPCEmptyKey
    if req.ignore_value and req.value:
        raise errors.ErrGRPCValueProvided
    if req.ignore_lease and req.lease != 0:
        raise errors.ErrGRPCLeaseProvided


def check_delete_request(req: rpc_pb2.DeleteRangeRequest) -> None:
    if not req.key:
        raise errors.ErrGRPCEmptyKey


def check_txn_request(req: rpc_pb2.TxnRequest, max_txn_ops: int, depth: int = 0) -> None:
    """Operation count and per-operation checks, as etcd's checkTxnRequest.

    The limit applies to the largest of the compare, success and failure lists; a nested
    txn is checked against what is left of the limit after its parent (etcd's rule), and
    may be at most MAX_TXN_NESTING levels below the outermost one.
    """
    op_count = max(len(req.compare), len(req.success), len(req.failure))
    if op_count > max_txn_ops or depth > MAX_TXN_NESTING:
        raise errors.ErrGRPCTooManyOps
    for compare in req.compare:
        if not compare.key:
            raise errors.ErrGRPCEmptyKey
    for op in [*req.success, *req.failure]:
        check_request_op(op, max_txn_ops - op_count, depth)


def check_request_op(op: rpc_pb2.RequestOp, max_txn_ops: int, depth: int = 0) -> None:
    kind = op.WhichOneof("request")
    if kind == "request_range":
        check_range_request(op.request_range)
    elif kind == "request_put":
        check_put_request(op.request_put)
    elif kind == "request_delete_range":
        check_delete_request(op.request_delete_range)
    elif kind == "request_txn":
        check_txn_request(op.request_txn, max_txn_ops, depth + 1)
    else:
        raise errors.ErrGRPCKeyNotFound  # an empty operation: etcd answers "key not found"


def _delete_interval(req: rpc_pb2.DeleteRangeRequest) -> Interval:
    if req.range_end:
        return req.key, req.range_end
    return req.key, req.key + b"\x00"  # a single key is the point [key, key\x00)


def _deletes_key(deletes: Iterable[Interval], key: bytes) -> bool:
    # An interval whose end sorts before its begin (e.g. range_end "\x00", "to the end")
    # covers nothing here, exactly as in etcd's interval tree.
    return any(begin <= key < end for begin, end in deletes)


def check_intervals(ops: Iterable[rpc_pb2.RequestOp]) -> tuple[set[bytes], list[Interval]]:
    """Refuse a txn branch that writes a key twice (etcd's checkIntervals).

    A key may not be put twice, nor put and deleted, at one level or across nested txns;
    the success and failure branches of one nested txn exclude each other, so the same
    key may be put in both. Returns the keys put and intervals deleted, for the parent.
    """
    ops = list(ops)
    deletes = [_delete_interval(op.request_delete_range) for op in ops
               if op.WhichOneof("request") == "request_delete_range"]
    puts: set[bytes] = set()
    for op in ops:
        if op.WhichOneof("request") != "request_txn":
            continue
        puts_then, deletes_then = check_intervals(op.request_txn.success)
        puts_else, deletes_else = check_intervals(op.request_txn.failure)
        for key in puts_then:
            if key in puts or _deletes_key(deletes, key):
                raise errors.ErrGRPCDuplicateKey
            puts.add(key)
        for key in puts_else:
            if (key in puts and key not in puts_then) or _deletes_key(deletes, key):
                raise errors.ErrGRPCDuplicateKey
            puts.add(key)
        deletes.extend(iv for iv in [*deletes_then, *deletes_else] if iv[1] > b"\x00")
    for op in ops:
        if op.WhichOneof("request") != "request_put":
            continue
        key = op.request_put.key
        if key in puts or _deletes_key(deletes, key):
            raise errors.ErrGRPCDuplicateKey
        puts.add(key)
    return puts, deletes


class KVServicer(rpc_pb2_grpc.KVServicer):
    """etcdserverpb.KV: Range, Put, DeleteRange, Txn, Compact."""

    def __init__(self, etcd: EtcdServerApi) -> None:
        self._etcd = etcd

    async def Range(self, request: rpc_pb2.RangeRequest, context: Any) -> rpc_pb2.RangeResponse:  # noqa: N802
        check_range_request(request)
        normalize_sort(request)
        return await self._etcd.range(request)

    async def Put(self, request: rpc_pb2.PutRequest, context: Any) -> rpc_pb2.PutResponse:  # noqa: N802
        check_put_request(request)
        return await self._etcd.put(request)

    async def DeleteRange(self, request: rpc_pb2.DeleteRangeRequest,  # noqa: N802
                          context: Any) -> rpc_pb2.DeleteRangeResponse:
        check_delete_request(request)
        return await self._etcd.delete_range(request)

    async def Txn(self, request: rpc_pb2.TxnRequest, context: Any) -> rpc_pb2.TxnResponse:  # noqa: N802
        check_txn_request(request, self._etcd.config.max_txn_ops)
        # Overlap checks come after the cheap ones so a huge txn cannot cost quadratic time.
        check_intervals(request.success)
        check_intervals(request.failure)
        normalize_txn_sorts(request)
        return await self._etcd.txn(request)

    async def Compact(self, request: rpc_pb2.CompactionRequest,  # noqa: N802
                      context: Any) -> rpc_pb2.CompactionResponse:
        return await self._etcd.compact(request)
