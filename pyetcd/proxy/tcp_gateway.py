"""etcd's L4 gateway (`etcd gateway start`): client TCP connections relayed to the cluster's endpoints.

Each new client connection goes to the next endpoint in round-robin order. An endpoint that refuses a
dial is marked inactive and skipped until the monitor, once every retry delay, dials it successfully
again. Bytes are relayed by asyncio transports: whatever a socket read returns is written to the other
side unchanged, and a side whose write buffer fills pauses reading on its peer (flow control), so no
Python code runs per byte and a slow reader never makes the gateway buffer without bound.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import cast

log = logging.getLogger("pyetcd.proxy.tcp_gateway")

DEFAULT_MONITOR_INTERVAL = 300.0
"""etcd's tcpproxy re-checks inactive endpoints every 5 minutes when given no interval."""

WRITE_BUFFER_HIGH = 4 * 1024 * 1024
WRITE_BUFFER_LOW = 1024 * 1024
"""A side pauses its peer's reading once this much is queued for it, and resumes it under the low mark."""


@dataclass(slots=True)
class Remote:
    """One endpoint of the cluster, as the gateway dials it."""

    host: str
    port: int
    inactive: bool = False

    @property
    def address(self) -> str:
        """The `host:port` form etcd logs."""
        return f"{self.host}:{self.port}"


def dial_error(address: str, err: OSError) -> str:
    """A failed dial in the words of Go's net package (`dial tcp 127.0.0.1:1: connect: connection refused`)."""
    if isinstance(err, socket.gaierror):
        return f"dial tcp: lookup {address.rsplit(':', 1)[0]}: no such host"
    code = err.errno
    if code is None:  # several addresses were tried: asyncio folds their errors into one message
        first = re.search(r"\[Errno (\d+)\]", str(err))
        code = int(first.group(1)) if first else None
    reason = os.strerror(code).lower() if code else (str(err) or type(err).__name__)
    return f"dial tcp {address}: connect: {reason}"


class Relay(asyncio.Protocol):
    """One side of a relayed connection: what it receives is written to its peer's transport."""

    def __init__(self, peer: Relay | None = None) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer = peer
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's
        self.transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH, low=WRITE_BUFFER_LOW)
        sock = transport.get_extra_info("socket")
        if sock is not None:  # as Go's net.Dial and Accept do: gRPC frames must not wait for Nagle
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None and not peer.closed:
            peer.transport.write(data)

    def eof_received(self) -> bool:
        # etcd closes both connections as soon as either direction ends; queued bytes still go out first.
        self.close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None and not self.peer.closed:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None and not self.peer.closed:
            self.peer.transport.resume_reading()

    def close(self) -> None:
        """Close this side (after its queued bytes are sent) and its peer."""
        if self.closed:
            return
        self.closed = True
        if self.transport is not None:
            self.transport.close()
        if self.peer is not None:
            self.peer.close()


class ClientRelay(Relay):
    """The accepted side: holds its first bytes, reading paused, until the gateway has dialed an endpoint."""

    def __init__(self, gateway: TCPGateway) -> None:
        super().__init__()
        self.gateway = gateway
        self.held: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert self.transport is not None
        self.transport.pause_reading()  # uvloop starts reading anyway: data_received holds what comes early
        self.gateway.clients.add(self)
        self.gateway.spawn(self.gateway.connect(self))

    def data_received(self, data: bytes) -> None:
        if self.peer is None:
            self.held.append(data)
            assert self.transport is not None
            self.transport.pause_reading()
            return
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.gateway.clients.discard(self)

    def relay_to(self, upstream: Relay) -> None:
        """Start relaying: the client's held bytes flow to `upstream`, which already writes back to it."""
        self.peer = upstream
        held, self.held = self.held, []
        for data in held:
            super().data_received(data)
        if self.transport is not None:
            self.transport.resume_reading()


@dataclass
class TCPGateway:
    """Accepts client connections on a listening socket and relays each to one active endpoint."""

    remotes: list[Remote]
    monitor_interval: float = DEFAULT_MONITOR_INTERVAL
    pick_count: int = 0
    clients: set[ClientRelay] = field(default_factory=set, init=False)
    _server: asyncio.AbstractServer | None = field(default=None, init=False)
    _listener: socket.socket | None = field(default=None, init=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False)

    async def start(self, listener: socket.socket) -> None:
        """Serve clients on `listener` (already bound and listening) and start the endpoint monitor."""
        if self.monitor_interval <= 0:
            self.monitor_interval = DEFAULT_MONITOR_INTERVAL
        loop = asyncio.get_running_loop()
        self._listener = listener
        self._server = await loop.create_server(lambda: ClientRelay(self), sock=listener)
        log.info("ready to proxy client requests", extra={"fields": {
            "endpoints": [remote.address for remote in self.remotes]}})
        self.spawn(self._monitor())

    @property
    def listen_port(self) -> int:
        assert self._listener is not None
        return int(self._listener.getsockname()[1])

    async def stop(self) -> None:
        """Stop accepting, stop the monitor and drop every relayed connection."""
        if self._server is not None:
            self._server.close()
        for client in list(self.clients):
            client.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def pick(self) -> Remote | None:
        """The next active endpoint in round-robin order, or None when every endpoint is inactive.

        As etcd's tcpproxy: one counter walks the endpoint list, stepping over inactive ones.
        """
        for _ in range(len(self.remotes)):
            remote = self.remotes[self.pick_count % len(self.remotes)]
            self.pick_count += 1
            if not remote.inactive:
                return remote
        return None

    def spawn(self, coro: Coroutine[object, object, None]) -> None:
        """Run `coro` as a task the gateway cancels when it stops."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def connect(self, client: ClientRelay) -> None:
        """Dial endpoints in turn until one answers and relay the client to it; with none left, close it."""
        loop = asyncio.get_running_loop()
        while (remote := self.pick()) is not None:
            try:
                # The endpoint may speak first (an HTTP/2 server sends its SETTINGS at once): it writes to
                # the client from the start.
                _, upstream = await loop.create_connection(lambda: Relay(peer=client), remote.host, remote.port)
            except OSError as err:
                remote.inactive = True
                log.warning("deactivated endpoint", extra={"fields": {
                    "address": remote.address, "interval": self.monitor_interval,
                    "error": dial_error(remote.address, err)}})
                continue
            if client.closed:
                upstream.close()
            else:
                client.relay_to(upstream)
            return
        client.close()

    async def _monitor(self) -> None:
        """Every interval, dial each inactive endpoint; one that answers is active again."""
        while True:
            await asyncio.sleep(self.monitor_interval)
            for remote in self.remotes:
                if remote.inactive:
                    self.spawn(self._reactivate(remote))

    async def _reactivate(self, remote: Remote) -> None:
        try:
            _, writer = await asyncio.open_connection(remote.host, remote.port)
        except OSError as err:
            log.warning("failed to activate endpoint (stay inactive for another interval)", extra={"fields": {
                "address": remote.address, "interval": self.monitor_interval,
                "error": dial_error(remote.address, err)}})
            return
        writer.close()
        remote.inactive = False
        log.info("activated", extra={"fields": {"address": remote.address}})
