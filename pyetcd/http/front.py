"""The client port: gRPC and plain HTTP/1.1 on one listener, told apart by a connection's first bytes.

etcd multiplexes its client port with cmux. grpcio cannot adopt a socket accepted elsewhere (its
server only binds its own addresses), so the member binds the client URLs itself and hands the
listeners to a small front process (relay_process.py). That process peeks at each connection
(MSG_PEEK, nothing consumed): the HTTP/2 preface means gRPC, and the connection is joined to
grpc-core's private abstract unix socket by a kernel splice relay running in the front process,
so no gRPC byte passes through Python code and the member's interpreter lock is never taken for
it. Anything else is HTTP/1.1: its socket comes back to the member over a unix socket
(SCM_RIGHTS) and is served by the HTTP side (the JSON gateway, /health, /version, /metrics).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import subprocess
import sys
import weakref
from collections.abc import Callable, Sequence
from typing import Protocol
from urllib.parse import urlsplit

from pyetcd.errors import StartupError

log = logging.getLogger("pyetcd.embed")

FRONT_EXIT_TIMEOUT_S = 5.0
_backend_names = itertools.count(1)

ProtocolFactory = Callable[[], asyncio.BaseProtocol]


class GrpcPortAdder(Protocol):
    """The part of a gRPC server that adds a listening address (grpc.aio.Server has it)."""

    def add_insecure_port(self, address: str) -> int: ...


def private_grpc_address() -> tuple[str, str]:
    """A fresh abstract unix socket for grpc-core: (gRPC's address form, the socket's name)."""
    name = f"pyetcd-grpc-{os.getpid()}-{next(_backend_names)}"
    return f"unix-abstract:{name}", "\0" + name


def bind_url(url: str) -> list[socket.socket]:
    """Listening sockets for one client URL (every address its host resolves to), as Go's net.Listen."""
    parts = urlsplit(url)
    if parts.scheme in ("unix", "unixs"):
        path = parts.netloc + parts.path
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            sock.bind(path)
        except OSError as err:
            sock.close()
            raise StartupError(f"listen unix {path}: bind: {(err.strerror or str(err)).lower()}") from None
        sock.listen(1024)
        sock.setblocking(False)
        return [sock]
    host, port = parts.hostname or "", parts.port or 0
    address = f"{host}:{port}"
    sockets: list[socket.socket] = []
    seen: set[tuple[int, object]] = set()
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise StartupError(f"listen tcp {address}: {err.strerror}") from None
    for family, kind, proto, _, sockaddr in infos:
        if (family, sockaddr[0]) in seen:
            continue
        seen.add((family, sockaddr[0]))
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(sockaddr)
        except OSError as err:
            sock.close()
            if sockets and family == socket.AF_INET6:
                continue  # "localhost" without IPv6 on loopback: the IPv4 address is enough
            for bound in sockets:
                bound.close()
            raise StartupError(f"listen tcp {address}: bind: {(err.strerror or str(err)).lower()}") from None
        sock.listen(1024)
        sock.setblocking(False)
        sockets.append(sock)
    return sockets


class ClientPortFront:
    """Owns the client URLs: a front process (relay_process.py) accepts on them, keeps gRPC
    connections to itself and hands HTTP/1.1 connections to this process's `http_protocol`."""

    def __init__(self, http_protocol: ProtocolFactory | None) -> None:
        self.grpc_address, self._grpc_socket_name = private_grpc_address()
        """Where grpc-core must listen (gRPC's address form); only the front process connects there."""
        self._http_protocol = http_protocol
        self._listeners: list[socket.socket] = []
        self._control: socket.socket | None = None
        self._front: subprocess.Popen[bytes] | None = None
        self._http_transports: weakref.WeakSet[asyncio.BaseTransport] = weakref.WeakSet()
        """Open HTTP/1.1 connections, closed by `stop`; a closed transport drops out on its own."""

    def bind(self, urls: Sequence[str]) -> None:
        """Bind every URL now, so a taken port fails start-up before anything is served."""
        try:
            for url in urls:
                self._listeners.extend(bind_url(url))
        except StartupError:
            self._close_listeners()
            raise

    def listen_grpc(self, server: GrpcPortAdder) -> None:
        """Make grpc-core listen on the private address the front process relays gRPC connections to."""
        try:
            port = server.add_insecure_port(self.grpc_address)
        except RuntimeError:  # grpcio raises where older releases returned 0
            port = 0
        if port == 0:
            raise StartupError(f"listen unix @{self._grpc_socket_name.lstrip(chr(0))}: bind: address already in use")

    def start(self) -> None:
        control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        fds = [theirs.fileno(), *(listener.fileno() for listener in self._listeners)]
        self._front = subprocess.Popen(
            [sys.executable, "-m", "pyetcd.http.relay_process", self._grpc_socket_name.lstrip("\0"),
             *map(str, fds)], pass_fds=fds, stdin=subprocess.DEVNULL)
        theirs.close()
        self._close_listeners()  # the front process accepts from here on
        control.setblocking(False)
        self._control = control
        asyncio.get_running_loop().add_reader(control.fileno(), self._receive_http_connection)

    async def stop(self) -> None:
        self._close_listeners()
        if self._control is not None:
            asyncio.get_running_loop().remove_reader(self._control.fileno())
            self._control.close()  # the front process exits when it sees this
            self._control = None
        if self._front is not None:
            front, self._front = self._front, None
            try:
                await asyncio.wait_for(asyncio.to_thread(front.wait), FRONT_EXIT_TIMEOUT_S)
            except TimeoutError:
                front.kill()
                await asyncio.to_thread(front.wait)
        for transport in list(self._http_transports):
            transport.close()

    def _close_listeners(self) -> None:
        for listener in self._listeners:
            listener.close()
        self._listeners = []

    def _receive_http_connection(self) -> None:
        assert self._control is not None
        try:
            _, fds, _, _ = socket.recv_fds(self._control, 1, 4)
        except BlockingIOError:
            return
        except OSError:
            return
        for fd in fds:
            conn = socket.socket(fileno=fd)
            if self._http_protocol is None:
                conn.close()
                continue
            asyncio.ensure_future(self._serve_http(conn))

    async def _serve_http(self, conn: socket.socket) -> None:
        assert self._http_protocol is not None
        conn.setblocking(False)
        transport, _ = await asyncio.get_running_loop().connect_accepted_socket(self._http_protocol, conn)
        self._http_transports.add(transport)
