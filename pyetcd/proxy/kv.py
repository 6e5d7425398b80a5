"""The KV service of the proxy: forwards to the cluster, answering serializable Ranges from its cache."""

from __future__ import annotations

from typing import Any

import grpc.aio

from etcdpb.etcdserverpb import rpc_pb2
from pyetcd.errors import EtcdError
from pyetcd.proxy.cache import RangeCache
from pyetcd.proxy.namespace import Namespace
from pyetcd.proxy.upstream import Upstream, fail_call, forwarded_metadata, remaining_timeout

RANGE = "/etcdserverpb.KV/Range"
PUT = "/etcdserverpb.KV/Put"
DELETE_RANGE = "/etcdserverpb.KV/DeleteRange"
TXN = "/etcdserverpb.KV/Txn"
COMPACT = "/etcdserverpb.KV/Compact"


class KVProxy:
    """Range, Put, DeleteRange, Txn and Compact through the proxy; writes keep the cache honest."""

    def __init__(self, upstream: Upstream, cache: RangeCache, namespace: Namespace | None = None) -> None:
        self._upstream = upstream
        self.cache = cache
        self._namespace = namespace

    async def Range(self, request: rpc_pb2.RangeRequest, context: Any) -> rpc_pb2.RangeResponse:
        try:
            upstream_request = self._namespace.range_request(request) if self._namespace else request
            response = await self._range(upstream_request, context)
        except (grpc.aio.AioRpcError, EtcdError) as err:
            await fail_call(context, err)
        return self._namespace.range_response(response) if self._namespace else response

    async def _range(self, request: rpc_pb2.RangeRequest, context: Any) -> rpc_pb2.RangeResponse:
        if request.serializable:
            cached = self.cache.get(request)
            if cached is not None:
                return cached
        response = await self._upstream.unary(RANGE, request, rpc_pb2.RangeResponse.FromString,
                                              metadata=forwarded_metadata(context),
                                              timeout=remaining_timeout(context), idempotent=True)
        # A linearizable answer is also a valid serializable one.
        self.cache.add(request, response)
        return response

    async def Put(self, request: rpc_pb2.PutRequest, context: Any) -> rpc_pb2.PutResponse:
        try:
            upstream_request = self._namespace.put_request(request) if self._namespace else request
            self.cache.invalidate(upstream_request.key)
            response = await self._upstream.unary(PUT, upstream_request, rpc_pb2.PutResponse.FromString,
                                                  metadata=forwarded_metadata(context),
                                                  timeout=remaining_timeout(context), idempotent=False)
            # Again after the write: a Range answered while it was in flight may have cached the old value.
            self.cache.invalidate(upstream_request.key)
        except (grpc.aio.AioRpcError, EtcdError) as err:
            await fail_call(context, err)
        return self._namespace.put_response(response) if self._namespace else response

    async def DeleteRange(self, request: rpc_pb2.DeleteRangeRequest,
                          context: Any) -> rpc_pb2.DeleteRangeResponse:
        try:
            upstream_request = self._namespace.delete_range_request(request) if self._namespace else request
            self.cache.invalidate(upstream_request.key, upstream_request.range_end)
            response = await self._upstream.unary(DELETE_RANGE, upstream_request,
                                                  rpc_pb2.DeleteRangeResponse.FromString,
                                                  metadata=forwarded_metadata(context),
                                                  timeout=remaining_timeout(context), idempotent=False)
            self.cache.invalidate(upstream_request.key, upstream_request.range_end)
        except (grpc.aio.AioRpcError, EtcdError) as err:
            await fail_call(context, err)
        return self._namespace.delete_range_response(response) if self._namespace else response

    async def Txn(self, request: rpc_pb2.TxnRequest, context: Any) -> rpc_pb2.TxnResponse:
        try:
            upstream_request = self._namespace.txn_request(request) if self._namespace else request
            response = await self._upstream.unary(TXN, upstream_request, rpc_pb2.TxnResponse.FromString,
                                                  metadata=forwarded_metadata(context),
                                                  timeout=remaining_timeout(context), idempotent=False)
        except (grpc.aio.AioRpcError, EtcdError) as err:
            await fail_call(context, err)
        # The compared keys may have changed since they were cached; be safe, as etcd's proxy is.
        for compare in upstream_request.compare:
            self.cache.invalidate(compare.key, compare.range_end)
        branch = upstream_request.success if response.succeeded else upstream_request.failure
        self._apply_to_cache(branch, response.responses)
        return self._namespace.txn_response(response) if self._namespace else response

    def _apply_to_cache(self, ops: Any, results: Any) -> None:
        """Drop what the executed branch wrote; remember what it read."""
        for op, result in zip(ops, results, strict=False):
            kind = op.WhichOneof("request")
            if kind == "request_put":
                self.cache.invalidate(op.request_put.key)
            elif kind == "request_delete_range":
                self.cache.invalidate(op.request_delete_range.key, op.request_delete_range.range_end)
            elif kind == "request_range":
                self.cache.add(op.request_range, result.response_range)
            elif kind == "request_txn":
                nested = op.request_txn
                nested_branch = nested.success if result.response_txn.succeeded else nested.failure
                self._apply_to_cache(nested_branch, result.response_txn.responses)

    async def Compact(self, request: rpc_pb2.CompactionRequest, context: Any) -> rpc_pb2.CompactionResponse:
        try:
            response = await self._upstream.unary(COMPACT, request, rpc_pb2.CompactionResponse.FromString,
                                                  metadata=forwarded_metadata(context),
                                                  timeout=remaining_timeout(context), idempotent=False)
        except (grpc.aio.AioRpcError, EtcdError) as err:
            await fail_call(context, err)
        self.cache.compact(request.revision)
        return response
