"""The batch protocol between a serving process and the core: length-prefixed frames on a unix stream.

A request frame holds a batch id and, per KV call, its method number, the caller's auth token (which
may be absent) and the serialized request. The answer frame holds the same batch id and, per
call in the same order, a gRPC status number (0 is OK) and the serialized response or the error's
message. Nothing here decodes protobuf: the serving process never parses what it forwards.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import grpc

KV_SERVICE = "etcdserverpb.KV"
METHODS = ("Range", "Put", "DeleteRange", "Txn", "Compact")
"""The etcdserverpb.KV methods sent in batches, by their number on the wire."""

HEADER = struct.Struct("<III")  # bytes after the length field, batch id, item count
CALL = struct.Struct("<BHI")  # method, token length, request length
ANSWER = struct.Struct("<BI")  # status number, payload length
ABSENT = 0xFFFF
"""A token length that means "the call had none" (an empty one is length 0)."""
STATUS_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


@dataclass(frozen=True, slots=True)
class Call:
    """One KV call as the core needs it to run pyetcd's own handler."""

    method: int
    request: bytes
    token: str | None = None


Answer = tuple[int, bytes]
"""(gRPC status number, response bytes when 0, else the error's message)."""


def _optional(text: str | None) -> tuple[int, bytes]:
    if text is None:
        return ABSENT, b""
    data = text.encode()
    return len(data), data


def encode_calls(batch_id: int, calls: Sequence[Call]) -> bytes:
    parts = [b""]
    for call in calls:
        token_len, token = _optional(call.token)
        parts += [CALL.pack(call.method, token_len, len(call.request)), token, call.request]
    body_size = sum(len(part) for part in parts) + HEADER.size - 4
    parts[0] = HEADER.pack(body_size, batch_id, len(calls))
    return b"".join(parts)


def encode_answers(batch_id: int, answers: Sequence[Answer]) -> bytes:
    parts = [b""]
    for status, payload in answers:
        parts += [ANSWER.pack(status, len(payload)), payload]
    parts[0] = HEADER.pack(sum(len(part) for part in parts) + HEADER.size - 4, batch_id, len(answers))
    return b"".join(parts)


def _take(body: bytes, position: int, length: int) -> tuple[str | None, int]:
    if length == ABSENT:
        return None, position
    return body[position:position + length].decode(), position + length


def decode_calls(body: bytes) -> tuple[int, list[Call]]:
    """A request frame without its length field: (batch id, calls)."""
    batch_id, count = struct.unpack_from("<II", body)
    calls: list[Call] = []
    position = 8
    for _ in range(count):
        method, token_len, request_len = CALL.unpack_from(body, position)
        position += CALL.size
        token, position = _take(body, position, token_len)
        calls.append(Call(method, body[position:position + request_len], token))
        position += request_len
    _check_size(body, position)
    return batch_id, calls


def decode_answers(body: bytes) -> tuple[int, list[Answer]]:
    """An answer frame without its length field: (batch id, answers)."""
    batch_id, count = struct.unpack_from("<II", body)
    answers: list[Answer] = []
    position = 8
    for _ in range(count):
        status, length = ANSWER.unpack_from(body, position)
        position += ANSWER.size
        answers.append((status, body[position:position + length]))
        position += length
    _check_size(body, position)
    return batch_id, answers


def _check_size(body: bytes, position: int) -> None:
    if position != len(body):
        raise ValueError(f"batch frame of {len(body)} bytes holds {position} bytes of items")


async def read_body(reader: asyncio.StreamReader) -> bytes:
    """The next frame without its length field; asyncio.IncompleteReadError once the other side closed."""
    (size,) = struct.unpack("<I", await reader.readexactly(4))
    return await reader.readexactly(size)
