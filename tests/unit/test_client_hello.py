"""The ClientHello reader the client port's front routes TLS connections by (ALPN offered)."""

from __future__ import annotations

import ssl

import pytest

from pyetcd.http.client_hello import NeedMore, parse_client_hello
from pyetcd.http.relay_process import tls_is_grpc


def client_hello(alpn: list[str] | None) -> bytes:
    """The first flight of Python's TLS client (OpenSSL) offering `alpn`."""
    context = ssl.create_default_context()
    if alpn is not None:
        context.set_alpn_protocols(alpn)
    tls = context.wrap_bio(ssl.MemoryBIO(), outgoing := ssl.MemoryBIO(), server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


@pytest.mark.parametrize("alpn", [["h2"], ["h2", "http/1.1"], ["http/1.1"], None])
def test_the_offered_protocols_are_read_once_the_hello_is_complete(alpn: list[str] | None) -> None:
    hello = client_hello(alpn)
    for end in (0, 3, 5, 9, len(hello) // 2, len(hello) - 1):
        with pytest.raises(NeedMore):
            parse_client_hello(hello[:end])
    expected = tuple(alpn) if alpn is not None else None
    assert parse_client_hello(hello).alpn == expected
    assert parse_client_hello(hello + b"\x17\x03\x03").alpn == expected  # bytes after it do not matter


def test_a_hello_fragmented_over_two_records_is_joined() -> None:
    hello = client_hello(["h2"])
    body = hello[5:]
    cut = 50
    records = b"".join(bytes([0x16, 3, 1]) + len(part).to_bytes(2, "big") + part for part in (body[:cut], body[cut:]))
    with pytest.raises(NeedMore):
        parse_client_hello(records[:5 + cut + 5])
    assert parse_client_hello(records).alpn == ("h2",)


@pytest.mark.parametrize("first", [b"GET / HTTP/1.1\r\n", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
                                   b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00"])
def test_anything_else_is_not_a_client_hello(first: bytes) -> None:
    with pytest.raises(ValueError):
        parse_client_hello(first)


@pytest.mark.parametrize(("alpn", "grpc"), [
    (("h2",), True),  # etcdctl (grpc-go), grpcio, grpc-js
    (("grpc-exp", "h2"), True),  # an extra gRPC-only name beside h2
    (("h2", "http/1.1"), False),  # curl, Chromium, Go's net/http
    (("http/1.1",), False),  # curl --http1.1, aiohttp
    (None, False),  # urllib, Prometheus
])
def test_only_clients_offering_h2_without_http1_go_to_grpc(alpn: tuple[str, ...] | None, grpc: bool) -> None:
    assert tls_is_grpc(alpn) is grpc
