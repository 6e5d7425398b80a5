"""The batch protocol between a front and the core: length-prefixed frames over a unix stream.

A request frame carries a batch id and items (KV method number, serialized request); the answer
frame carries the same batch id and, per item in the same order, a gRPC status number (0 is OK)
and either the serialized response or the error's message. Nothing here knows protobuf: the
front never decodes what it forwards.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Sequence

import grpc

METHODS = ("Range", "Put", "DeleteRange", "Txn", "Compact")
"""The etcdserverpb.KV methods a front forwards, by their number on the wire."""

FRAME = struct.Struct("<III")  # bytes after the length field, batch id, item count
ITEM = struct.Struct("<BI")  # method (request) or status (answer) number, payload length
STATUS_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}

Item = tuple[int, bytes]
"""(method number, request bytes) going to the core; (status number, payload) coming back."""


def encode(batch_id: int, items: Sequence[Item]) -> bytes:
    parts = [b""]
    size = FRAME.size - 4
    for number, payload in items:
        parts.append(ITEM.pack(number, len(payload)))
        parts.append(payload)
        size += ITEM.size + len(payload)
    parts[0] = FRAME.pack(size, batch_id, len(items))
    return b"".join(parts)


def decode_body(body: bytes) -> tuple[int, list[Item]]:
    """A frame without its length field: (batch id, items)."""
    batch_id, count = struct.unpack_from("<II", body)
    items: list[Item] = []
    position = 8
    for _ in range(count):
        number, length = ITEM.unpack_from(body, position)
        position += ITEM.size
        items.append((number, body[position:position + length]))
        position += length
    if position != len(body):
        raise ValueError(f"batch frame of {len(body)} bytes holds {position} bytes of items")
    return batch_id, items


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, list[Item]]:
    """The next frame; asyncio.IncompleteReadError when the other side has closed."""
    (size,) = struct.unpack("<I", await reader.readexactly(4))
    return decode_body(await reader.readexactly(size))
