"""A small, versioned binary encoding of ConfChange, for the data of CONF_CHANGE entries.

Layout (big-endian): version (1 byte, currently 1), type (1 byte), node_id (8 bytes),
id (8 bytes), context length (4 bytes), context bytes.
"""

from __future__ import annotations

import struct

from raft.core.types import ConfChange, ConfChangeType, RaftError

CONF_CHANGE_VERSION = 1
_HEADER = struct.Struct(">BBQQI")


class ConfChangeDecodeError(RaftError):
    """The bytes are not a ConfChange this version understands."""


def encode_conf_change(cc: ConfChange) -> bytes:
    return _HEADER.pack(CONF_CHANGE_VERSION, int(cc.type), cc.node_id, cc.id, len(cc.context)) + cc.context


def decode_conf_change(data: bytes) -> ConfChange:
    if len(data) < _HEADER.size:
        raise ConfChangeDecodeError(f"conf change too short: {len(data)} bytes")
    version, cc_type, node_id, cc_id, context_len = _HEADER.unpack_from(data)
    if version != CONF_CHANGE_VERSION:
        raise ConfChangeDecodeError(f"unknown conf change version {version}")
    if len(data) != _HEADER.size + context_len:
        raise ConfChangeDecodeError(
            f"conf change length mismatch: {len(data)} bytes, header says {_HEADER.size + context_len}")
    try:
        kind = ConfChangeType(cc_type)
    except ValueError:
        raise ConfChangeDecodeError(f"unknown conf change type {cc_type}") from None
    return ConfChange(type=kind, node_id=node_id, context=bytes(data[_HEADER.size:]), id=cc_id)
