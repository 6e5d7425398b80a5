"""The client port's front process: accepts, tells gRPC from HTTP, and keeps gRPC's bytes away
from the member's process.

Started by front.ClientPortFront with the bound listening sockets and a control socket. For
each connection it peeks (MSG_PEEK, nothing consumed) at the first bytes:

- on a plain listener, the HTTP/2 preface is gRPC; anything else is HTTP/1.1;
- on a TLS listener (https://, unixs://), the ClientHello's ALPN list decides (see `tls_is_grpc`).

A gRPC connection is joined, bytes unchanged (still encrypted on a TLS listener), to grpc-core's
private listener for that kind of listener:

- a TCP client, where the kernel allows an eBPF sockmap (sockmap.py), to grpc-core's private TCP
  port on 127.0.0.1: the front connects there, tells the member which client the connection's
  local port stands for (a control message tagged "a", sent before connecting, see
  relayed_peer.RelayedClients), and the kernel moves the bytes both ways from then on; this process
  only passes on ends of stream and resets;
- otherwise (the default, a unix socket client, or no sockmap), to grpc-core's private unix socket
  by a splice relay running here (splice_relay.py), whose socket name carries the client's address.

An HTTP one is handed to the member over the control socket (SCM_RIGHTS, tagged "h" plain or "t"
TLS) for the HTTP side, which terminates TLS itself. It exits when the member closes the control
socket (or dies).

Run as `python -m pyetcd.http.relay_process GRPC_SOCKET_NAME GRPC_TLS_SOCKET_NAME GRPC_TCP GRPC_TLS_TCP
CONTROL_FD LISTENER...`, GRPC_TCP and GRPC_TLS_TCP `host:port` or `-` (none: splice only), each
LISTENER a file descriptor, prefixed `tls:` for a TLS listener.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import selectors
import signal
import socket
import sys
import time
from dataclasses import dataclass, field

from pyetcd.http.client_hello import PEEK_BYTES as HELLO_PEEK_BYTES
from pyetcd.http.client_hello import NeedMore, parse_client_hello
from pyetcd.http.sockmap import BpfUnavailable, NotJoined, Sockmap, SockmapRelays
from pyetcd.http.splice_relay import SpliceRelay
from pyetcd.relayed_peer import client_message, go_address, gone_message, relay_socket_name

HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
PEEK_BYTES = 4
"""Enough to tell "PRI " from "GET ", "POST", "PUT ", ..."""
PARTIAL_RETRY_S = 0.002
PARTIAL_TIMEOUT_S = 10.0
"""How long a connection may take to send the bytes that tell what it is (Go's TLS handshake timeout)."""
TLS_LISTENER_PREFIX = "tls:"
PLAIN_HTTP_TAG = b"h"
TLS_HTTP_TAG = b"t"
NO_TCP_BACKEND = "-"
SOCKMAP_ENV = "PYETCD_CLIENT_PORT_SOCKMAP"
"""Set to 1 to have the kernel join gRPC connections (eBPF sockmap) where it can, instead of the splice
relay: less CPU in the front process, but more latency per call (benchmarks/README.md)."""


def is_grpc(first: bytes) -> bool:
    return HTTP2_PREFACE.startswith(first)


def tls_is_grpc(alpn: tuple[str, ...] | None) -> bool:
    """Whether a TLS client that offered `alpn` (None: no ALPN extension) is a gRPC client.

    gRPC requires HTTP/2 and offers only `h2`: seen from etcdctl 3.4 (grpc-go), grpcio and grpc-js
    1.14. HTTP clients offer `http/1.1` (curl, Chromium, Go's net/http with HTTP/2 on: `h2, http/1.1`;
    curl --http1.1 and aiohttp: `http/1.1`) or no ALPN at all (Python's urllib, Go's net/http with
    its own TLS config, as Prometheus scrapes). So a client offering `h2` without `http/1.1` goes to
    gRPC, and every other one to the HTTP side, which negotiates HTTP/1.1. A client speaking HTTP/2
    only over TLS (no `http/1.1` offered) is taken for gRPC, which answers it as grpc-core answers
    non-gRPC requests.
    """
    return alpn is not None and "h2" in alpn and "http/1.1" not in alpn


@dataclass(frozen=True, slots=True)
class GrpcBackend:
    """Where one kind (plain or TLS) of gRPC connection goes: grpc-core's private unix socket, and its
    private TCP address for kernel-joined connections (None: splice only).

    A member with serving processes gives one socket per serving process (and no TCP address):
    connections take them in turn, skipping one that does not accept (a serving process restarting)."""

    socket_names: tuple[str, ...]
    tcp: tuple[str, int] | None
    turns: itertools.count[int] = field(default_factory=itertools.count, compare=False)

    def in_turn(self) -> list[str]:
        """Every socket, starting with this connection's turn (the rest to fall back on)."""
        start = next(self.turns) % len(self.socket_names)
        return [*self.socket_names[start:], *self.socket_names[:start]]


def tcp_backend(argument: str) -> tuple[str, int] | None:
    if argument == NO_TCP_BACKEND:
        return None
    host, port = argument.rsplit(":", 1)
    return host, int(port)


def socket_names(argument: str) -> tuple[str, ...]:
    """Comma-separated abstract socket names, without their leading NUL."""
    return tuple("\0" + name for name in argument.split(","))


def kernel_relays() -> SockmapRelays | None:
    """The sockmap joining gRPC connections, or None (said once on stderr, the member's log) where
    the kernel refuses it."""
    try:
        return SockmapRelays(Sockmap.create())
    except (BpfUnavailable, OSError) as err:
        print(f"client port: eBPF sockmap unavailable ({err}); relaying gRPC connections with splice",
              file=sys.stderr, flush=True)
        return None


@dataclass(slots=True)
class Waiting:
    """A connection whose first bytes are not all there yet: looked at again until `deadline`."""

    tls: bool
    deadline: float


class FrontLoop:
    """One selector over the listeners, the control socket and connections not yet told apart."""

    def __init__(self, grpc: GrpcBackend, grpc_tls: GrpcBackend, control: socket.socket,
                 listeners: list[tuple[socket.socket, bool]], kernel: SockmapRelays | None = None) -> None:
        self._grpc = grpc
        self._grpc_tls = grpc_tls
        self._control = control
        self._kernel = kernel
        self._selector = selectors.DefaultSelector()
        self._partial: list[tuple[socket.socket, Waiting]] = []
        self._relay_ids = itertools.count(1)
        for listener, tls in listeners:
            listener.setblocking(False)
            self._selector.register(listener, selectors.EVENT_READ, ("accept", tls))
        self._selector.register(control, selectors.EVENT_READ, ("control", False))
        if kernel is not None:
            self._selector.register(kernel.fileno(), selectors.EVENT_READ, ("joined", False))

    def run(self) -> None:
        while True:
            timeout = PARTIAL_RETRY_S if self._partial else None
            if self._kernel is not None and (retry := self._kernel.timeout()) is not None:
                timeout = retry if timeout is None else min(timeout, retry)
            for key, _ in self._selector.select(timeout):
                kind, tls = key.data
                if kind == "joined":
                    assert self._kernel is not None
                    self._kernel.handle_events()
                    continue
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                if kind == "control":
                    if not sock.recv(1):
                        return  # the member is gone
                elif kind == "accept":
                    self._accept(sock, tls)
                else:
                    self._selector.unregister(sock)
                    self._route(sock, Waiting(tls, time.monotonic() + PARTIAL_TIMEOUT_S))
            if self._kernel is not None and self._kernel.timeout() is not None:
                self._kernel.retry()
            partial, self._partial = self._partial, []
            for conn, waiting in partial:
                if time.monotonic() > waiting.deadline:
                    conn.close()
                else:
                    self._route(conn, waiting)

    def _accept(self, listener: socket.socket, tls: bool) -> None:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            return
        except OSError:
            time.sleep(0.05)  # out of descriptors: let the kernel queue wait rather than spin
            return
        conn.setblocking(False)
        if conn.family != socket.AF_UNIX:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._selector.register(conn, selectors.EVENT_READ, ("peek", tls))

    def _route(self, conn: socket.socket, waiting: Waiting) -> None:
        try:
            first = conn.recv(HELLO_PEEK_BYTES if waiting.tls else PEEK_BYTES, socket.MSG_PEEK)
        except BlockingIOError:
            self._partial.append((conn, waiting))
            return
        except OSError:
            conn.close()
            return
        if not first:
            conn.close()
        elif waiting.tls:
            self._route_tls(conn, first, waiting)
        elif len(first) < PEEK_BYTES and is_grpc(first):
            self._partial.append((conn, waiting))  # a prefix of the preface so far: look again shortly
        elif is_grpc(first):
            self._relay_to_grpc(conn, self._grpc)
        else:
            self._hand_to_member(conn, PLAIN_HTTP_TAG)

    def _route_tls(self, conn: socket.socket, first: bytes, waiting: Waiting) -> None:
        try:
            hello = parse_client_hello(first)
        except NeedMore:
            self._partial.append((conn, waiting))  # the ClientHello spans segments still on their way
            return
        except ValueError:
            self._hand_to_member(conn, TLS_HTTP_TAG)  # not a ClientHello: the member's TLS refuses it
            return
        if tls_is_grpc(hello.alpn):
            self._relay_to_grpc(conn, self._grpc_tls)
        else:
            self._hand_to_member(conn, TLS_HTTP_TAG)

    def _hand_to_member(self, conn: socket.socket, tag: bytes) -> None:
        with contextlib.suppress(OSError):
            socket.send_fds(self._control, [tag], [conn.fileno()])
        conn.close()

    def _relay_to_grpc(self, conn: socket.socket, backend: GrpcBackend) -> None:
        if self._kernel is not None and backend.tcp is not None and conn.family != socket.AF_UNIX:
            self._join_in_kernel(conn, backend.tcp, self._kernel)
            return
        try:
            client = go_address(conn.getpeername()) if conn.family != socket.AF_UNIX else ""
        except OSError:
            conn.close()
            return
        for socket_name in backend.in_turn():
            relay = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                relay.bind(relay_socket_name(f"{os.getpid()}-{next(self._relay_ids)}", client))
                relay.connect(socket_name)
            except OSError:
                relay.close()
                continue
            SpliceRelay(conn, relay).start()
            return
        conn.close()

    def _join_in_kernel(self, conn: socket.socket, address: tuple[str, int], kernel: SockmapRelays) -> None:
        """Connects to grpc-core's private TCP port and lets the kernel move the bytes. The member hears
        which client the connection's local port stands for before grpc-core can accept it."""
        relay = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            relay.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            relay.bind((address[0], 0))
            self._control.send(client_message(relay.getsockname()[1], go_address(conn.getpeername())))
            relay.connect(address)
        except OSError:
            relay.close()
            conn.close()
            return
        port = relay.getsockname()[1]
        try:
            kernel.join(conn, relay, lambda: self._tell_member(gone_message(port)))
        except NotJoined:
            SpliceRelay(conn, relay).start()  # a full map: this connection is relayed as without the kernel
        except OSError:
            pass  # a failed join has closed both: the client sees its connection end

    def _tell_member(self, message: bytes) -> None:
        with contextlib.suppress(OSError):
            self._control.send(message)


def listener_argument(fd: int, tls: bool) -> str:
    return f"{TLS_LISTENER_PREFIX}{fd}" if tls else str(fd)


def _listener(argument: str) -> tuple[socket.socket, bool]:
    tls = argument.startswith(TLS_LISTENER_PREFIX)
    return socket.socket(fileno=int(argument.removeprefix(TLS_LISTENER_PREFIX))), tls


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the member's Ctrl-C is the member's to handle
    grpc = GrpcBackend(socket_names(argv[0]), tcp_backend(argv[2]))
    grpc_tls = GrpcBackend(socket_names(argv[1]), tcp_backend(argv[3]))
    control = socket.socket(fileno=int(argv[4]))
    listeners = [_listener(argument) for argument in argv[5:]]
    kernel = kernel_relays() if grpc.tcp is not None or grpc_tls.tcp is not None else None
    FrontLoop(grpc, grpc_tls, control, listeners, kernel).run()
    os._exit(0)  # relays still running die with the process, as the member's connections do


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
