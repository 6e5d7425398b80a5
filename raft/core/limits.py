"""How big entries are, for the byte limits on APP messages and on committed entries per Ready."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from raft.core.types import Entry

Held = TypeVar("Held")

ENTRY_OVERHEAD = 16
"""Bytes counted per entry on top of its payload (term, index, type), so empty entries are not free."""


def entry_size(entry: Entry) -> int:
    return len(entry.data) + ENTRY_OVERHEAD


def limit_size(entries: Sequence[Held], max_bytes: int | None,
               size: Callable[[Held], int] = entry_size) -> list[Held]:  # type: ignore[assignment]
    """The longest prefix of `entries` within `max_bytes`, but always at least one entry; `size` says what
    an entry counts for (a log that keeps some entries on disk counts those by their recorded length)."""
    if max_bytes is None or not entries:
        return list(entries)
    total = size(entries[0])
    n = 1
    while n < len(entries):
        total += size(entries[n])
        if total > max_bytes:
            break
        n += 1
    return list(entries[:n])
