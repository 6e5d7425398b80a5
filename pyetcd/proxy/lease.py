"""The Lease service of the proxy: forwarded, with keep-alives of one lease coalesced.

Many clients often keep the same lease alive (a session shared by several processes). Every
downstream keep-alive for a lease that already has one in flight upstream waits for that one's
answer instead of sending another, so the cluster sees one renewal per lease at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio

from etcdpb.etcdserverpb import rpc_pb2
from pyetcd.proxy.upstream import Metadata, Upstream, fail_call, forwarded_metadata, is_unavailable

log = logging.getLogger("pyetcd.grpcproxy")

LEASE_KEEP_ALIVE = "/etcdserverpb.Lease/LeaseKeepAlive"


class KeepAliveStream:
    """One upstream LeaseKeepAlive stream shared by every lease kept alive with the same metadata."""

    def __init__(self, hub: KeepAliveHub, metadata: Metadata) -> None:
        self._hub = hub
        self._metadata = metadata
        # Lease ID -> the answer every waiting caller gets.
        self._waiting: dict[int, asyncio.Future[rpc_pb2.LeaseKeepAliveResponse]] = {}
        self._outgoing: asyncio.Queue[int] = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run())

    @property
    def alive(self) -> bool:
        return not self._task.done()

    async def keep_alive(self, lease_id: int) -> rpc_pb2.LeaseKeepAliveResponse:
        future = self._waiting.get(lease_id)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._waiting[lease_id] = future
            self._outgoing.put_nowait(lease_id)
        else:
            self._hub.coalesced += 1
        # Shielded: one caller going away must not cancel the answer the others wait for.
        return await asyncio.shield(future)

    async def _run(self) -> None:
        upstream = self._hub.upstream
        failures = 0
        while True:
            index, call = upstream.stream_stream(LEASE_KEEP_ALIVE, rpc_pb2.LeaseKeepAliveResponse.FromString,
                                                 metadata=self._metadata)
            sender = asyncio.get_running_loop().create_task(self._send(call))
            try:
                async for response in call:
                    failures = 0
                    future = self._waiting.pop(response.ID, None)
                    if future is not None and not future.done():
                        future.set_result(response)
                error: BaseException | None = None
            except grpc.aio.AioRpcError as err:
                error = err
            finally:
                sender.cancel()
                call.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender
            retryable = error is None or is_unavailable(error)
            if retryable:
                upstream.report_failure(index)
                failures += 1
            if not retryable or failures >= upstream.endpoint_count:
                self._fail_all(error or ConnectionError("keep-alive stream closed"))
                return
            log.warning("lease keep-alive stream on %s failed; resending on the next endpoint",
                        upstream.targets[index])
            # Keep-alives are idempotent: whatever was in flight is simply sent again.
            for lease_id in self._waiting:
                self._outgoing.put_nowait(lease_id)
            await asyncio.sleep(0.05 * failures)

    async def _send(self, call: grpc.aio.StreamStreamCall) -> None:
        while True:
            lease_id = await self._outgoing.get()
            if lease_id not in self._waiting:
                continue  # answered meanwhile (a duplicate queued by a resend)
            await call.write(rpc_pb2.LeaseKeepAliveRequest(ID=lease_id))
            self._hub.upstream_keepalives_sent += 1

    def _fail_all(self, error: BaseException) -> None:
        waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(error)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._fail_all(ConnectionError("proxy stopped"))


class KeepAliveHub:
    """The proxy's upstream keep-alive streams, one per distinct forwarded metadata (auth token)."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self._streams: dict[Metadata, KeepAliveStream] = {}
        # Keep-alive requests written upstream, and downstream ones answered by another's request.
        self.upstream_keepalives_sent = 0
        self.coalesced = 0

    async def keep_alive(self, lease_id: int, metadata: Metadata) -> rpc_pb2.LeaseKeepAliveResponse:
        stream = self._streams.get(metadata)
        if stream is None or not stream.alive:
            stream = self._streams[metadata] = KeepAliveStream(self, metadata)
        return await stream.keep_alive(lease_id)

    async def close(self) -> None:
        streams, self._streams = list(self._streams.values()), {}
        for stream in streams:
            await stream.close()


class LeaseKeepAliveProxy:
    """The LeaseKeepAlive method; the other Lease methods are plain forwards."""

    def __init__(self, hub: KeepAliveHub) -> None:
        self._hub = hub

    async def LeaseKeepAlive(self, request_iterator: AsyncIterator[rpc_pb2.LeaseKeepAliveRequest],
                             context: Any) -> AsyncIterator[rpc_pb2.LeaseKeepAliveResponse]:
        metadata = forwarded_metadata(context)
        async for request in request_iterator:
            try:
                response = await self._hub.keep_alive(request.ID, metadata)
            except grpc.aio.AioRpcError as err:
                await fail_call(context, err)
            except ConnectionError as err:
                await context.abort(grpc.StatusCode.UNAVAILABLE, str(err))
            yield response
