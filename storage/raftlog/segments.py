"""Segment files: naming, the append-only writer, and directory fsyncs.

A segment is one file of framed records named by its sequence number; the log is
the concatenation of its segments in sequence order. Only the last one is written.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

_SEGMENT_NAME = re.compile(r"^([0-9a-f]{16})\.wal$")


def segment_path(directory: Path, seq: int) -> Path:
    return directory / f"{seq:016x}.wal"


def list_segments(directory: Path) -> list[tuple[int, Path]]:
    """(sequence, path) of every segment file in `directory`, oldest first."""
    found = []
    for child in directory.iterdir():
        match = _SEGMENT_NAME.match(child.name)
        if match:
            found.append((int(match.group(1), 16), child))
    return sorted(found)


def fsync_dir(directory: Path) -> None:
    """Make file creations, renames and deletions in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_fd(fd: int) -> None:
    # fdatasync skips the inode timestamps, which replay does not need.
    if hasattr(os, "fdatasync"):
        os.fdatasync(fd)
    else:  # pragma: no cover - non-Linux
        os.fsync(fd)


@dataclass(slots=True)
class SegmentInfo:
    """What compaction needs to know about a segment: may it go once the log starts past some index?"""

    seq: int
    path: Path
    max_entry_index: int = 0


class SegmentWriter:
    """Appends bytes to the tail segment; `sync` makes them durable."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.size = os.fstat(self._fd).st_size

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self.size += len(data)

    def sync(self) -> None:
        sync_fd(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
