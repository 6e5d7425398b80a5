"""The proxy's side as a client of the cluster: one channel per endpoint, and which endpoint serves next.

Calls go to the current endpoint. When it answers UNAVAILABLE the proxy moves on to the next endpoint;
an idempotent call is retried there, but a write that may already have been applied is not: its error
goes back to the caller, as clientv3 does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, Protocol, TypeVar

import grpc
import grpc.aio

from pyetcd.errors import abort_with

M = TypeVar("M")

# Metadata a client sends that the cluster must see too: the auth token, and clientv3's
# require-leader flag (the member refuses the call when it has no leader).
FORWARDED_METADATA = ("token", "hasleader")

Metadata = tuple[tuple[str, str], ...]

# grpc-core's wording when no connection could be made: the call never reached a server, so even a
# write is safe to send elsewhere.
_NEVER_SENT_MARKERS = ("failed to connect to all addresses",)


class Message(Protocol):
    def SerializeToString(self, *, deterministic: bool = ...) -> bytes: ...


def endpoint_target(endpoint: str) -> str:
    """`host:port`, `http://host:port` or `https://host:port` as the gRPC target `host:port`."""
    target = endpoint.strip()
    for scheme in ("http://", "https://"):
        if target.startswith(scheme):
            target = target[len(scheme):]
    return target.rstrip("/")


def forwarded_metadata(context: Any) -> Metadata:
    """The part of a downstream call's metadata that goes upstream with it."""
    return tuple((key, value) for key, value in (context.invocation_metadata() or ())
                 if key in FORWARDED_METADATA)


def remaining_timeout(context: Any) -> float | None:
    """The downstream caller's remaining deadline, so an upstream call never outlives it."""
    remaining: float | None = context.time_remaining()
    return remaining


async def pass_through(context: Any, err: grpc.aio.AioRpcError) -> NoReturn:
    """End a downstream call with the upstream error, code and details unchanged."""
    await context.abort(err.code(), err.details() or "")
    raise AssertionError("grpc context.abort returned")  # pragma: no cover - abort always raises


async def fail_call(context: Any, err: BaseException) -> NoReturn:
    """End a downstream call with the error an upstream call or a local check raised."""
    if isinstance(err, grpc.aio.AioRpcError):
        await pass_through(context, err)
    await abort_with(context, err)


def is_unavailable(err: BaseException) -> bool:
    return isinstance(err, grpc.aio.AioRpcError) and err.code() == grpc.StatusCode.UNAVAILABLE


def never_sent(err: BaseException) -> bool:
    """The call failed before any server saw it (no connection could be made)."""
    if not is_unavailable(err):
        return False
    details = (err.details() or "").lower()  # type: ignore[attr-defined]
    return any(marker in details for marker in _NEVER_SENT_MARKERS)


def _read(path: str) -> bytes | None:
    return Path(path).read_bytes() if path else None


def client_credentials(cert: str, key: str, cacert: str) -> grpc.ChannelCredentials:
    """TLS credentials for the proxy's connections to the cluster."""
    return grpc.ssl_channel_credentials(root_certificates=_read(cacert), private_key=_read(key),
                                        certificate_chain=_read(cert))


class Upstream:
    """Channels to the cluster's endpoints, with failover from one endpoint to the next."""

    def __init__(self, endpoints: Sequence[str], *, credentials: grpc.ChannelCredentials | None = None,
                 max_send_bytes: int = 4 * 1024 * 1024, max_recv_bytes: int = 2**31 - 1) -> None:
        if not endpoints:
            raise ValueError("the proxy needs at least one endpoint")
        self.targets = [endpoint_target(endpoint) for endpoint in endpoints]
        options = [
            ("grpc.max_send_message_length", max_send_bytes),
            ("grpc.max_receive_message_length", max_recv_bytes),
            # A restarted member is found again quickly instead of after grpc's long default backoff.
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000),
        ]
        self._channels: list[grpc.aio.Channel] = [
            grpc.aio.secure_channel(target, credentials, options=options) if credentials is not None
            else grpc.aio.insecure_channel(target, options=options)
            for target in self.targets
        ]
        self._current = 0
        # How many times the proxy has moved to another endpoint after a failure.
        self.failovers = 0

    @property
    def endpoint_count(self) -> int:
        return len(self._channels)

    @property
    def current_target(self) -> str:
        return self.targets[self._current]

    def pick(self) -> tuple[int, grpc.aio.Channel]:
        """The endpoint for the next call: the current one unless it is known to be down."""
        index = self._current
        if self._is_down(index):
            for step in range(1, len(self._channels)):
                other = (index + step) % len(self._channels)
                if not self._is_down(other):
                    self._move_to(other)
                    break
        return self._current, self._channels[self._current]

    def _is_down(self, index: int) -> bool:
        state = self._channels[index].get_state(try_to_connect=False)
        return bool(state == grpc.ChannelConnectivity.TRANSIENT_FAILURE)

    def report_failure(self, index: int) -> None:
        """The endpoint at `index` failed a call: later calls go to the next one."""
        if index == self._current:
            self._move_to((index + 1) % len(self._channels))

    def _move_to(self, index: int) -> None:
        if index != self._current:
            self._current = index
            self.failovers += 1

    async def unary(self, path: str, request: Message, response_type: Callable[[bytes], M], *,
                    metadata: Metadata = (), timeout: float | None = None, idempotent: bool) -> M:
        """One unary call, failing over to the next endpoint when that is safe."""
        attempts = len(self._channels)
        for attempt in range(attempts):
            index, channel = self.pick()
            call = channel.unary_unary(path, request_serializer=_serialize,
                                       response_deserializer=response_type)
            try:
                response: M = await call(request, metadata=metadata, timeout=timeout)
                return response
            except grpc.aio.AioRpcError as err:
                if not is_unavailable(err):
                    raise
                self.report_failure(index)
                retry = idempotent or never_sent(err)
                if not retry or attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def stream_stream(self, path: str, response_type: Callable[[bytes], M], *,
                      metadata: Metadata = ()) -> tuple[int, grpc.aio.StreamStreamCall]:
        """A bidirectional stream on the current endpoint (the caller handles failover)."""
        index, channel = self.pick()
        method = channel.stream_stream(path, request_serializer=_serialize,
                                       response_deserializer=response_type)
        return index, method(metadata=metadata)

    def unary_stream(self, path: str, request: Message, response_type: Callable[[bytes], M], *,
                     metadata: Metadata = (),
                     timeout: float | None = None) -> tuple[int, grpc.aio.UnaryStreamCall]:
        """A server stream on the current endpoint (the caller handles failover)."""
        index, channel = self.pick()
        method = channel.unary_stream(path, request_serializer=_serialize,
                                      response_deserializer=response_type)
        return index, method(request, metadata=metadata, timeout=timeout)

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()

