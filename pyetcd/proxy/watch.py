"""The Watch service of the proxy: each downstream stream's watchers are served by shared broadcasts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc.aio

from etcdpb.etcdserverpb import rpc_pb2
from pyetcd.proxy.namespace import Namespace
from pyetcd.proxy.upstream import Metadata, Upstream, forwarded_metadata
from pyetcd.proxy.watch_broadcast import BroadcastKey, Receiver, WatchHub

# etcd's answers to a create request it refuses (the created response is also canceled, watch ID -1).
ERR_EMPTY_WATCHER_RANGE = "mvcc: watcher range is empty"
ERR_WATCHER_DUPLICATE_ID = "mvcc: duplicate watch ID provided on the WatchStream"
ERR_COMPACTED = "etcdserver: mvcc: required revision has been compacted"
INVALID_WATCH_ID = -1

RANGE = "/etcdserverpb.KV/Range"


class WatchProxy:
    """Serves Watch streams from the hub's broadcasts."""

    def __init__(self, hub: WatchHub, upstream: Upstream, namespace: Namespace | None = None) -> None:
        self._hub = hub
        self._upstream = upstream
        self._namespace = namespace

    async def Watch(self, request_iterator: AsyncIterator[rpc_pb2.WatchRequest],
                    context: Any) -> AsyncIterator[rpc_pb2.WatchResponse]:
        stream = DownstreamWatchStream(self._hub, self._upstream, self._namespace,
                                       forwarded_metadata(context))
        reader = asyncio.get_running_loop().create_task(stream.read(request_iterator))
        try:
            while True:
                response = await stream.outbox.get()
                if response is None:
                    return
                yield response
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            stream.close()


class DownstreamWatchStream:
    """One client's Watch stream: its watch IDs, and the responses queued for it in order."""

    def __init__(self, hub: WatchHub, upstream: Upstream, namespace: Namespace | None,
                 metadata: Metadata) -> None:
        self._hub = hub
        self._upstream = upstream
        self._namespace = namespace
        self._metadata = metadata
        # None ends the stream. Unbounded: a broadcast never waits for a slow client.
        self.outbox: asyncio.Queue[rpc_pb2.WatchResponse | None] = asyncio.Queue()
        self.watchers: dict[int, Receiver] = {}
        self._next_watch_id = 0

    async def read(self, requests: AsyncIterator[rpc_pb2.WatchRequest]) -> None:
        try:
            async for request in requests:
                kind = request.WhichOneof("request_union")
                if kind == "create_request":
                    self._create(request.create_request)
                elif kind == "cancel_request":
                    self._cancel(request.cancel_request.watch_id)
                elif kind == "progress_request":
                    await self._progress()
        except grpc.aio.AioRpcError:
            pass
        finally:
            self.outbox.put_nowait(None)

    def _create(self, request: rpc_pb2.WatchCreateRequest) -> None:
        if request.start_revision < 0:
            self._refuse(ERR_COMPACTED)
            return
        if request.range_end not in (b"", b"\x00") and request.key >= request.range_end:
            self._refuse(ERR_EMPTY_WATCHER_RANGE)
            return
        if request.watch_id:
            if request.watch_id in self.watchers:
                self._refuse(ERR_WATCHER_DUPLICATE_ID)
                return
            watch_id = request.watch_id
        else:
            while self._next_watch_id in self.watchers:
                self._next_watch_id += 1
            watch_id = self._next_watch_id
            self._next_watch_id += 1
        upstream_request = self._namespace.watch_create(request) if self._namespace else request
        receiver = Receiver(
            watch_id=watch_id, start_revision=request.start_revision, prev_kv=request.prev_kv,
            progress_notify=request.progress_notify, filters=frozenset(request.filters),
            deliver=self._deliver, on_closed=self._on_closed,
        )
        self.watchers[watch_id] = receiver
        key = BroadcastKey(self._metadata, upstream_request.key, upstream_request.range_end)
        self._hub.add(key, receiver)

    def _refuse(self, reason: str) -> None:
        self.outbox.put_nowait(rpc_pb2.WatchResponse(
            header=rpc_pb2.ResponseHeader(), watch_id=INVALID_WATCH_ID, created=True, canceled=True,
            cancel_reason=reason))

    def _cancel(self, watch_id: int) -> None:
        receiver = self.watchers.pop(watch_id, None)
        if receiver is None:
            return
        broadcast = receiver.broadcast
        header = rpc_pb2.ResponseHeader()
        if broadcast is not None:
            header.CopyFrom(broadcast.last_header)
            broadcast.remove(receiver)
        self.outbox.put_nowait(rpc_pb2.WatchResponse(header=header, watch_id=watch_id, canceled=True))

    async def _progress(self) -> None:
        """Tell the client a revision below every event still to come on this stream."""
        header = rpc_pb2.ResponseHeader()
        bounds = []
        for receiver in self.watchers.values():
            broadcast = receiver.broadcast
            if broadcast is None:
                continue
            if broadcast.created:
                header.CopyFrom(broadcast.last_header)
                bounds.append(broadcast.next_revision - 1)
            elif broadcast.start_revision > 0:
                bounds.append(broadcast.start_revision - 1)
        if bounds:
            header.revision = min(bounds)
        else:
            try:
                answer = await self._upstream.unary(
                    RANGE, rpc_pb2.RangeRequest(key=b"\x00", count_only=True),
                    rpc_pb2.RangeResponse.FromString, metadata=self._metadata, idempotent=True)
            except grpc.aio.AioRpcError:
                return
            header.CopyFrom(answer.header)
        self.outbox.put_nowait(rpc_pb2.WatchResponse(header=header, watch_id=INVALID_WATCH_ID))

    def _deliver(self, response: rpc_pb2.WatchResponse) -> None:
        if self._namespace:
            self._namespace.watch_response(response)
        self.outbox.put_nowait(response)

    def _on_closed(self, receiver: Receiver) -> None:
        if self.watchers.get(receiver.watch_id) is receiver:
            del self.watchers[receiver.watch_id]

    def close(self) -> None:
        for receiver in list(self.watchers.values()):
            if receiver.broadcast is not None:
                receiver.broadcast.remove(receiver)
        self.watchers.clear()
