"""How big entries are, for the byte limits on APP messages and on committed entries per Ready."""

from __future__ import annotations

from collections.abc import Sequence

from raft.core.types import Entry

ENTRY_OVERHEAD = 16
"""Bytes counted per entry on top of its payload (term, index, type), so empty entries are not free."""


def entry_size(entry: Entry) -> int:
    return len(entry.data) + ENTRY_OVERHEAD


def limit_size(entries: Sequence[Entry], max_bytes: int | None) -> list[Entry]:
    """The longest prefix of `entries` within `max_bytes`, but always at least one entry."""
    if max_bytes is None or not entries:
        return list(entries)
    total = entry_size(entries[0])
    n = 1
    while n < len(entries):
        total += entry_size(entries[n])
        if total > max_bytes:
            break
        n += 1
    return list(entries[:n])
