"""Reads the ALPN list a TLS client offers from its ClientHello (RFC 8446 §4.1.2, RFC 7301 §3.1),
so the client port's front can tell a gRPC client from an HTTP one without decrypting anything.

The front peeks (MSG_PEEK) at the connection's first bytes; nothing here consumes or answers them.
A ClientHello can be split over several TCP segments or TLS records, so `offered_protocols` says
when it needs more bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

HANDSHAKE_RECORD = 0x16
CLIENT_HELLO = 0x01
ALPN_EXTENSION = 16
RECORD_HEADER_BYTES = 5
MAX_RECORD_BYTES = (1 << 14) + 2048
"""The largest TLS record payload a peer may send (RFC 8446 §5.2, with TLS 1.2's allowance)."""
MAX_CLIENT_HELLO_BYTES = 1 << 16
"""More than any real ClientHello (browsers' post-quantum ones are under 2 KiB); beyond it, give up."""
PEEK_BYTES = MAX_CLIENT_HELLO_BYTES + 4 * RECORD_HEADER_BYTES


class NeedMore(Exception):
    """The ClientHello is not complete in the bytes seen so far."""


@dataclass(frozen=True, slots=True)
class ClientHello:
    """What the front needs from a ClientHello: the ALPN protocols offered, None without the extension."""

    alpn: tuple[str, ...] | None


def _handshake_bytes(data: bytes) -> bytes:
    """The handshake layer's bytes carried by the leading handshake records, up to a whole ClientHello.

    Raises NeedMore while the first handshake message is incomplete, ValueError when `data` is not
    TLS handshake records.
    """
    joined = b""
    at = 0
    while True:
        if len(joined) >= 4:
            wanted = 4 + int.from_bytes(joined[1:4], "big")
            if wanted > MAX_CLIENT_HELLO_BYTES:
                raise ValueError("ClientHello too large")
            if len(joined) >= wanted:
                return joined[:wanted]
        if len(data) < at + RECORD_HEADER_BYTES:
            raise NeedMore
        kind, major = data[at], data[at + 1]
        length = int.from_bytes(data[at + 3:at + 5], "big")
        if kind != HANDSHAKE_RECORD or major != 3 or length == 0 or length > MAX_RECORD_BYTES:
            raise ValueError("not a TLS handshake record")
        if len(data) < at + RECORD_HEADER_BYTES + length:
            raise NeedMore
        joined += data[at + RECORD_HEADER_BYTES:at + RECORD_HEADER_BYTES + length]
        at += RECORD_HEADER_BYTES + length
        if joined[0] != CLIENT_HELLO:
            raise ValueError("first handshake message is not a ClientHello")


class _Reader:
    """Bounds-checked reads through a ClientHello body."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, count: int) -> bytes:
        if self.at + count > len(self.data):
            raise ValueError("truncated ClientHello")
        chunk = self.data[self.at:self.at + count]
        self.at += count
        return chunk

    def number(self, width: int) -> int:
        return int.from_bytes(self.take(width), "big")

    def vector(self, length_width: int) -> bytes:
        return self.take(self.number(length_width))

    @property
    def done(self) -> bool:
        return self.at >= len(self.data)


def parse_client_hello(data: bytes) -> ClientHello:
    """The ClientHello at the start of `data` (a connection's first bytes).

    Raises NeedMore when more bytes are needed, ValueError when `data` does not start with a
    well-formed ClientHello (then it is not TLS, or not a TLS client worth routing).
    """
    body = _Reader(_handshake_bytes(data)[4:])
    body.take(2 + 32)  # legacy_version, random
    body.vector(1)  # legacy_session_id
    body.vector(2)  # cipher_suites
    body.vector(1)  # legacy_compression_methods
    if body.done:
        return ClientHello(alpn=None)  # no extensions at all (SSL 3 style hello)
    extensions = _Reader(body.vector(2))
    while not extensions.done:
        kind = extensions.number(2)
        content = extensions.vector(2)
        if kind != ALPN_EXTENSION:
            continue
        names = _Reader(_Reader(content).vector(2))
        protocols = []
        while not names.done:
            protocols.append(names.vector(1).decode("ascii", errors="replace"))
        return ClientHello(alpn=tuple(protocols))
    return ClientHello(alpn=None)
