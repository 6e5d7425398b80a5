"""Plain forwarding of a call to the cluster, for every method the proxy adds nothing to."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc.aio
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

from pyetcd.errors import EtcdError
from pyetcd.proxy.handlers import method_path, response_class
from pyetcd.proxy.upstream import (
    Upstream,
    fail_call,
    forwarded_metadata,
    is_unavailable,
    remaining_timeout,
)

Transform = Callable[[Any], Any]
UnaryHandler = Callable[[Any, Any], Awaitable[Any]]
StreamHandler = Callable[[Any, Any], AsyncIterator[Any]]


@dataclass(frozen=True, slots=True)
class Route:
    """How one method is forwarded: whether a retry elsewhere is safe, and rewrites on the way."""

    # Safe to send again to another member after a failure (reads, keep-alives).
    idempotent: bool = False
    to_upstream: Transform | None = None
    from_upstream: Transform | None = None


def unary_forwarder(upstream: Upstream, method: MethodDescriptor, route: Route) -> UnaryHandler:
    path = method_path(method)
    decode = response_class(method).FromString

    async def forward(request: Any, context: Any) -> Any:
        try:
            upstream_request = route.to_upstream(request) if route.to_upstream else request
            response = await upstream.unary(path, upstream_request, decode,
                                            metadata=forwarded_metadata(context),
                                            timeout=remaining_timeout(context), idempotent=route.idempotent)
        except (grpc.aio.AioRpcError, EtcdError) as err:
            await fail_call(context, err)
        return route.from_upstream(response) if route.from_upstream else response

    return forward


def server_stream_forwarder(upstream: Upstream, method: MethodDescriptor, route: Route) -> StreamHandler:
    """Forward a server stream (Snapshot, Observe); a stream that failed before its first message
    moves to the next endpoint when the route is idempotent."""
    path = method_path(method)
    decode = response_class(method).FromString

    async def forward(request: Any, context: Any) -> AsyncIterator[Any]:
        try:
            upstream_request = route.to_upstream(request) if route.to_upstream else request
        except EtcdError as err:
            await fail_call(context, err)
        metadata = forwarded_metadata(context)
        for attempt in range(upstream.endpoint_count):
            index, call = upstream.unary_stream(path, upstream_request, decode, metadata=metadata,
                                                timeout=remaining_timeout(context))
            received = False
            try:
                async for response in call:
                    received = True
                    yield route.from_upstream(response) if route.from_upstream else response
                return
            except grpc.aio.AioRpcError as err:
                if is_unavailable(err):
                    upstream.report_failure(index)
                    if route.idempotent and not received and attempt < upstream.endpoint_count - 1:
                        continue
                await fail_call(context, err)
            finally:
                call.cancel()

    return forward


def forwarders(upstream: Upstream, service: ServiceDescriptor,
               routes: Mapping[str, Route] | None = None) -> dict[str, Callable[..., Any]]:
    """A forwarding implementation for every unary and server-streaming method of `service`."""
    routes = routes or {}
    implementations: dict[str, Callable[..., Any]] = {}
    for method in service.methods:
        route = routes.get(method.name, Route())
        if method.client_streaming:
            continue
        if method.server_streaming:
            implementations[method.name] = server_stream_forwarder(upstream, method, route)
        else:
            implementations[method.name] = unary_forwarder(upstream, method, route)
    return implementations

