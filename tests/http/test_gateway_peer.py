"""The JSON gateway names a caller as grpc-core does, from the connection's socket family."""

from __future__ import annotations

import socket

from pyetcd.certchecks import remote_host
from pyetcd.http.gateway import grpc_peer


def test_ipv4_caller() -> None:
    peer = grpc_peer(socket.AF_INET, ("127.0.0.1", 40000))
    assert peer == "ipv4:127.0.0.1:40000"
    assert remote_host(peer) == "127.0.0.1"


def test_ipv6_caller() -> None:
    peer = grpc_peer(socket.AF_INET6, ("::1", 40000, 0, 0))
    assert peer == "ipv6:[::1]:40000"
    assert remote_host(peer) == "::1"


def test_unix_socket_caller_has_no_address() -> None:
    peer = grpc_peer(socket.AF_UNIX, "")
    assert peer.startswith("unix:")
    assert remote_host(peer) is None
