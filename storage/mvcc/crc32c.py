"""CRC-32C (Castagnoli), the checksum etcd uses for its store hashes.

Uses the ``google-crc32c`` package when installed (C speed); otherwise a table-driven implementation in
Python, which gives the same numbers, only slower.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

_POLY = 0x82F63B78  # the Castagnoli polynomial, bit-reversed


def _make_table() -> tuple[int, ...]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ _POLY if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_TABLE = _make_table()


def _extend_python(crc: int, data: bytes) -> int:
    table = _TABLE
    c = crc ^ 0xFFFFFFFF
    for b in data:
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _load_extend() -> Callable[[int, bytes], int]:
    try:
        module = importlib.import_module("google_crc32c")
    except ImportError:
        return _extend_python
    extend: Callable[[int, bytes], int] = module.extend
    return extend


extend: Callable[[int, bytes], int] = _load_extend()
"""extend(crc, data) -> the CRC-32C of everything hashed so far followed by ``data``."""


class Crc32c:
    """A running CRC-32C, written to like Go's hash.Hash32."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def write(self, data: bytes) -> None:
        self.value = extend(self.value, data)
