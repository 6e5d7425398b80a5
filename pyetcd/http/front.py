"""The client port: gRPC and HTTP/1.1 on one listener, plain or TLS, told apart by a connection's first bytes.

etcd multiplexes its client port with cmux, and on a TLS port routes HTTP/2 gRPC requests to gRPC
and everything else to its HTTP mux. grpcio cannot adopt a socket accepted elsewhere (its server
only binds its own addresses), so the member binds the client URLs itself and hands the listeners
to a small front process (relay_process.py). That process peeks at each connection (MSG_PEEK,
nothing consumed): on a plain URL the HTTP/2 preface means gRPC, on an https:// or unixs:// URL
a ClientHello offering only `h2` does (relay_process.tls_is_grpc). A gRPC connection is joined,
bytes unchanged, to grpc-core's private abstract unix socket (a TLS one for TLS URLs, so grpc-core
makes the handshake itself) by a splice relay in the front process. Asked to
(PYETCD_CLIENT_PORT_SOCKMAP=1) and where the kernel allows an eBPF sockmap (sockmap.py; a refusal is
logged once), a TCP client's connection is instead joined to grpc-core's private TCP port on
127.0.0.1 by the kernel itself, which moves every byte both ways with no wake-up of the front
process. Either way no gRPC byte passes through Python code and the member's interpreter lock is
never taken for it. Anything else
is HTTP/1.1: its socket comes back to the member over a unix socket (SCM_RIGHTS) and is served by
the HTTP side (the JSON gateway, /health, /version, /metrics, /debug/raft), which on a TLS URL makes
the handshake with the same TLS settings (pyetcd/http/tls.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import ssl
import subprocess
import sys
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

from pyetcd.errors import StartupError
from pyetcd.http import sockmap
from pyetcd.http.relay_process import NO_TCP_BACKEND, SOCKMAP_ENV, TLS_HTTP_TAG, listener_argument
from pyetcd.http.tls import HttpTls
from pyetcd.relayed_peer import RELAYED_CLIENTS
from pyetcd.tlsconfig import TLSInfo, is_secure_url

log = logging.getLogger("pyetcd.embed")

FRONT_EXIT_TIMEOUT_S = 5.0
_backend_names = itertools.count(1)
NO_TLS = TLSInfo()

ProtocolFactory = Callable[[], asyncio.BaseProtocol]
PRIVATE_TCP_ADDRESS = "127.0.0.1:0"
CONTROL_MESSAGE_BYTES = 512
_kernel_join: bool | None = None


def kernel_join_available() -> bool:
    """Whether gRPC connections are to be joined in the kernel: asked for (PYETCD_CLIENT_PORT_SOCKMAP=1)
    and allowed. Decided once per process; a refusal is logged that once."""
    global _kernel_join
    if _kernel_join is None:
        reason = sockmap.unavailable() if os.environ.get(SOCKMAP_ENV) == "1" else None
        if reason is not None:
            log.warning("client port: gRPC connections are relayed with splice, not joined in the kernel "
                        "(eBPF sockmap: %s)", reason)
        _kernel_join = os.environ.get(SOCKMAP_ENV) == "1" and reason is None
    return _kernel_join


class GrpcPortAdder(Protocol):
    """The part of a gRPC server that adds a listening address (grpc.aio.Server has it)."""

    def add_insecure_port(self, address: str) -> int: ...

    def add_secure_port(self, address: str, server_credentials: Any) -> int: ...


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
        self.grpc_tls_address, self._grpc_tls_socket_name = private_grpc_address()
        """Where grpc-core listens with the client TLS credentials, for gRPC on https:// and unixs:// URLs."""
        self.grpc_tcp_address: str | None = None
        """grpc-core's private TCP port (host:port) for connections the kernel joins; None: splice only."""
        self.grpc_tls_tcp_address: str | None = None
        self._grpc_backends = [self._grpc_socket_name.lstrip("\0")]
        self._grpc_tls_backends = [self._grpc_tls_socket_name.lstrip("\0")]
        """The abstract sockets gRPC connections are relayed to, taken in turn (serving processes')."""
        self._relays_elsewhere = False
        self._http_protocol = http_protocol
        self._http_tls: HttpTls | None = None
        self._listeners: list[tuple[socket.socket, bool]] = []
        """Each bound listener, and whether its URL is a TLS one."""
        self._control: socket.socket | None = None
        self._front: subprocess.Popen[bytes] | None = None
        self._http_transports: weakref.WeakSet[asyncio.BaseTransport] = weakref.WeakSet()
        """Open HTTP/1.1 connections, closed by `stop`; a closed transport drops out on its own."""
        self._tls_transports: set[asyncio.BaseTransport] = set()
        """Open HTTP/1.1 connections over TLS, closed by `stop`: uvloop's TLS transports take no weak
        reference, so closed ones are dropped whenever another connection arrives."""

    @property
    def serves_tls(self) -> bool:
        return any(tls for _, tls in self._listeners)

    def bind(self, urls: Sequence[str], tls: TLSInfo = NO_TLS, cipher_suites: Sequence[str] = ()) -> None:
        """Bind every URL now, so a taken port fails start-up before anything is served.

        https:// and unixs:// URLs are served with `tls` (unless it is empty, as the gRPC side does).
        """
        try:
            for url in urls:
                secure = is_secure_url(url) and not tls.empty
                if secure and self._http_tls is None:
                    self._http_tls = HttpTls(tls, cipher_suites)
                self._listeners.extend((sock, secure) for sock in bind_url(url))
        except (StartupError, OSError, ValueError, ssl.SSLError) as err:
            self._close_listeners()
            if isinstance(err, StartupError):
                raise
            raise StartupError(f"client TLS: {err}") from None

    def listen_grpc(self, server: GrpcPortAdder, tls_credentials: Callable[[], Any] | None = None) -> None:
        """Make grpc-core listen on the private addresses the front process relays gRPC connections to
        (the TLS one, with `tls_credentials()`, when a TLS URL is bound)."""
        addresses: list[tuple[str, str, Callable[[], Any] | None]] = [
            (self.grpc_address, self._grpc_socket_name, None)]
        if self.serves_tls:
            assert tls_credentials is not None, "TLS client URLs need the gRPC server's TLS credentials"
            addresses.append((self.grpc_tls_address, self._grpc_tls_socket_name, tls_credentials))
        for address, name, credentials in addresses:
            try:
                port = server.add_insecure_port(address) if credentials is None else \
                    server.add_secure_port(address, credentials())
            except RuntimeError:  # grpcio raises where older releases returned 0
                port = 0
            if port == 0:
                raise StartupError(f"listen unix @{name.lstrip(chr(0))}: bind: address already in use")
        if not kernel_join_available():
            return
        self.grpc_tcp_address = self._listen_private_tcp(server, None)
        if self.serves_tls:
            self.grpc_tls_tcp_address = self._listen_private_tcp(server, tls_credentials)

    @staticmethod
    def _listen_private_tcp(server: GrpcPortAdder, credentials: Callable[[], Any] | None) -> str:
        try:
            port = server.add_insecure_port(PRIVATE_TCP_ADDRESS) if credentials is None else \
                server.add_secure_port(PRIVATE_TCP_ADDRESS, credentials())
        except RuntimeError:
            port = 0
        if port == 0:
            raise StartupError(f"listen tcp {PRIVATE_TCP_ADDRESS}: bind: address already in use")
        return f"127.0.0.1:{port}"

    def relay_grpc_to(self, socket_names: Sequence[str], tls_socket_names: Sequence[str]) -> None:
        """Relay gRPC connections to these abstract sockets (names without the leading NUL), taking them in
        turn, instead of to grpc-core in this process (so never through the kernel join); call before `start`."""
        self._grpc_backends = list(socket_names)
        self._grpc_tls_backends = list(tls_socket_names) or self._grpc_tls_backends
        self._relays_elsewhere = True

    def start(self) -> None:
        control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        fds = [theirs.fileno(), *(listener.fileno() for listener, _ in self._listeners)]
        listeners = [listener_argument(listener.fileno(), tls) for listener, tls in self._listeners]
        self._front = subprocess.Popen(
            [sys.executable, "-m", "pyetcd.http.relay_process", ",".join(self._grpc_backends),
             ",".join(self._grpc_tls_backends),
             NO_TCP_BACKEND if self._relays_elsewhere else self.grpc_tcp_address or NO_TCP_BACKEND,
             NO_TCP_BACKEND if self._relays_elsewhere else self.grpc_tls_tcp_address or NO_TCP_BACKEND,
             str(theirs.fileno()), *listeners],
            pass_fds=fds, stdin=subprocess.DEVNULL)
        theirs.close()
        self._close_listeners()  # the front process accepts from here on
        control.setblocking(False)
        self._control = control
        asyncio.get_running_loop().add_reader(control.fileno(), self._read_control)
        RELAYED_CLIENTS.add_reader(self._read_pending_control)

    async def stop(self) -> None:
        self._close_listeners()
        RELAYED_CLIENTS.remove_reader(self._read_pending_control)
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
        for transport in [*self._http_transports, *self._tls_transports]:
            transport.close()
        self._tls_transports.clear()

    def _close_listeners(self) -> None:
        for listener, _ in self._listeners:
            listener.close()
        self._listeners = []

    def _read_pending_control(self) -> None:
        """Every message the front process has sent so far (a gRPC call may need one not read yet)."""
        while self._read_control():
            pass

    def _read_control(self) -> bool:
        """One message from the front process: an HTTP connection, or which client a kernel-joined
        connection carries; False when there was none to read."""
        if self._control is None:
            return False
        try:
            tag, fds, _, _ = socket.recv_fds(self._control, CONTROL_MESSAGE_BYTES, 4)
        except OSError:  # BlockingIOError: nothing pending
            return False
        if not tag and not fds:
            return False  # the front process is gone
        if not fds and RELAYED_CLIENTS.heard(tag):
            return True
        for fd in fds:
            conn = socket.socket(fileno=fd)
            if self._http_protocol is None:
                conn.close()
                continue
            asyncio.ensure_future(self._serve_http(conn, tls=tag == TLS_HTTP_TAG))
        return True

    async def _serve_http(self, conn: socket.socket, *, tls: bool) -> None:
        assert self._http_protocol is not None
        conn.setblocking(False)
        loop = asyncio.get_running_loop()
        if not tls:
            transport, _ = await loop.connect_accepted_socket(self._http_protocol, conn)
        elif self._http_tls is None:
            conn.close()
            return
        else:
            tls_transport = await self._http_tls.serve(self._http_protocol, conn)
            if tls_transport is None:
                return
            self._tls_transports = {kept for kept in self._tls_transports if not kept.is_closing()}
            self._tls_transports.add(tls_transport)
            return
        self._http_transports.add(transport)
