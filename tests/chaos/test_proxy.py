"""The peer proxy: forwarding, knowing who opened a connection, and cutting one direction."""

from __future__ import annotations

import os
import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from tests.chaos.proxy import BLACKHOLE, RESET, PeerProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        try:
            while data := self.request.recv(4096):
                self.request.sendall(data)
        except ConnectionResetError:
            pass  # the RESET test cuts connections this way on purpose


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def proxy() -> Iterator[PeerProxy]:
    # This test process plays member 0: the proxy finds our sockets among our own fds.
    with PeerProxy(lambda: {os.getpid(): 0}) as started:
        yield started


def roundtrip(port: int, payload: bytes = b"ping", timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        return sock.recv(4096)


def test_bytes_flow_through_and_the_opening_member_is_identified(proxy: PeerProxy, echo_port: int) -> None:
    port = proxy.listen(1, echo_port)
    assert roundtrip(port) == b"ping"
    stats = proxy.stats()
    assert stats.connections == 1 and stats.unidentified == 0


def test_a_cut_only_stops_the_direction_it_names(proxy: PeerProxy, echo_port: int) -> None:
    to_member_1 = proxy.listen(1, echo_port)
    to_member_2 = proxy.listen(2, echo_port)
    proxy.cut([(0, 1)], RESET)
    assert roundtrip(to_member_2) == b"ping"
    with pytest.raises(OSError):
        roundtrip(to_member_1)  # reset or closed before any reply
    proxy.cut([(1, 0)], RESET)  # the other way round does not concern our connections
    assert roundtrip(to_member_2) == b"ping"


def test_a_blackhole_holds_bytes_until_healed_then_delivers_them(proxy: PeerProxy, echo_port: int) -> None:
    port = proxy.listen(1, echo_port)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"before")
        assert sock.recv(4096) == b"before"
        proxy.cut([(0, 1)], BLACKHOLE)
        sock.sendall(b"during")
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(4096)
        proxy.heal()
        sock.settimeout(5)
        assert sock.recv(4096) == b"during"
    assert proxy.cuts() == {}


def test_a_reset_cut_breaks_connections_already_open(proxy: PeerProxy, echo_port: int) -> None:
    port = proxy.listen(1, echo_port)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"x")
        assert sock.recv(4096) == b"x"
        proxy.cut([(0, 1)], RESET)
        with pytest.raises(OSError):
            sock.sendall(b"y")
            if not sock.recv(4096):
                raise ConnectionResetError("closed")
    proxy.heal()
    assert roundtrip(port) == b"ping"
