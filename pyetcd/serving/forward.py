"""Forwarding a serving process's non-KV calls (Watch, Lease, Cluster, Maintenance, Auth, unknown methods) to
the core's private gRPC socket, bytes unchanged: request and response messages, the call's metadata and
deadline, and the status, details and trailing metadata that end it. Nothing is decoded or re-encoded,
so each call behaves exactly as it does when the member serves it in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import grpc.aio

from etcdpb.etcdserverpb import rpc_pb2

Metadata = tuple[tuple[str, str | bytes], ...]
CALL_SHAPES: dict[str, tuple[bool, bool]] = {
    f"/{service.full_name}/{method.name}": (method.client_streaming, method.server_streaming)
    for service in rpc_pb2.DESCRIPTOR.services_by_name.values() for method in service.methods}
"""Every etcd v3 method by gRPC path: (client streaming, server streaming)."""


def client_metadata(context: grpc.aio.ServicerContext[Any, Any]) -> Metadata:
    """The metadata a client sent, less what gRPC itself sets on every call."""
    return tuple((key, value) for key, value in context.invocation_metadata() or ()
                 if not key.startswith((":", "grpc-")) and key != "user-agent")


async def _abort_like(context: grpc.aio.ServicerContext[Any, Any], err: grpc.aio.AioRpcError) -> None:
    """End the client's call the way the core ended the forwarded one."""
    await context.abort(err.code(), err.details() or "", err.trailing_metadata() or ())


async def _pass_back_metadata(call: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    trailing = await call.trailing_metadata()
    if trailing:
        context.set_trailing_metadata(trailing)


async def _answers(call: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[bytes]:
    """A streaming call's responses from the core, then its trailing metadata or its error, passed on."""
    try:
        async for response in call:
            yield response
        await _pass_back_metadata(call, context)
    except grpc.aio.AioRpcError as err:
        await _abort_like(context, err)


class ForwardToCore(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Claims every method it is asked about and forwards it to `channel` (the core's private socket)."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._channel = channel
        self._handlers: dict[str, Any] = {}

    def service(self, handler_call_details: Any) -> Any:
        method: str = handler_call_details.method
        handler = self._handlers.get(method)
        if handler is None:
            handler = self._handlers[method] = self._handler(method)
        return handler

    def _metadata(self, context: grpc.aio.ServicerContext[Any, Any]) -> Metadata:
        return client_metadata(context)

    def _handler(self, method: str) -> Any:
        client_streaming, server_streaming = CALL_SHAPES.get(method, (True, True))
        if not client_streaming and not server_streaming:
            return grpc.unary_unary_rpc_method_handler(self._unary(method))
        if not client_streaming:
            return grpc.unary_stream_rpc_method_handler(self._unary_stream(method))
        return grpc.stream_stream_rpc_method_handler(self._stream_stream(method))

    def _unary(self, method: str) -> Callable[[bytes, Any], Awaitable[bytes]]:
        multicallable = self._channel.unary_unary(method)

        async def forward(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            call = multicallable(request, metadata=self._metadata(context), timeout=context.time_remaining())
            try:
                response: bytes = await call
            except grpc.aio.AioRpcError as err:
                await _abort_like(context, err)
                raise  # not reached: abort raises
            await _pass_back_metadata(call, context)
            return response

        return forward

    def _unary_stream(self, method: str) -> Callable[[bytes, Any], AsyncIterator[bytes]]:
        multicallable = self._channel.unary_stream(method)

        async def forward(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[bytes]:
            call = multicallable(request, metadata=self._metadata(context), timeout=context.time_remaining())
            try:
                async for response in _answers(call, context):
                    yield response
            finally:
                call.cancel()  # the client went away: so does the core's side

        return forward

    def _stream_stream(self, method: str) -> Callable[[AsyncIterator[bytes], Any], AsyncIterator[bytes]]:
        multicallable = self._channel.stream_stream(method)

        async def forward(requests: AsyncIterator[bytes],
                          context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[bytes]:
            call = multicallable(metadata=self._metadata(context), timeout=context.time_remaining())

            async def send_requests() -> None:
                with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
                    async for request in requests:
                        await call.write(request)
                    await call.done_writing()

            sending = asyncio.create_task(send_requests())
            try:
                async for response in _answers(call, context):
                    yield response
            finally:
                call.cancel()
                sending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await sending

        return forward
