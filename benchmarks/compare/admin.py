"""Work between runs, outside any measurement: filling the keyspace and compacting history."""

from __future__ import annotations

from collections import deque
from typing import Any

import grpc

from benchmarks.compare.clients import key
from benchmarks.compare.plan import BASE_VALUE_SIZE, KEYSPACE
from etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc

TXN_OPS = 128  # etcd's default --max-txn-ops, which pyetcd keeps too
IN_FLIGHT = 8
TIMEOUT_S = 60.0


def prefill(endpoint: str, keyspace: int = KEYSPACE, value_size: int = BASE_VALUE_SIZE) -> None:
    """Puts a value under every key of the keyspace, `TXN_OPS` puts per txn, a few txns in flight,
    so reads hit real keys."""
    value = b"v" * value_size
    with grpc.insecure_channel(endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        pending: deque[Any] = deque()
        for first in range(0, keyspace, TXN_OPS):
            puts = [rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key(index), value=value))
                    for index in range(first, min(first + TXN_OPS, keyspace))]
            pending.append(kv.Txn.future(rpc_pb2.TxnRequest(success=puts), timeout=TIMEOUT_S))
            if len(pending) >= IN_FLIGHT:
                pending.popleft().result()
        while pending:
            pending.popleft().result()


def compact(endpoint: str) -> None:
    """Compacts away all history before the current revision, waiting until it is done, so every run
    starts from a store of the same shape."""
    with grpc.insecure_channel(endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        revision = kv.Range(rpc_pb2.RangeRequest(key=b"bench-probe"), timeout=TIMEOUT_S).header.revision
        kv.Compact(rpc_pb2.CompactionRequest(revision=revision, physical=True), timeout=TIMEOUT_S)
