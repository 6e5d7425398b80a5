"""A readable record of a simulated run, for people learning Raft and for replaying failures.

Tracing is off by default because formatting every event would dominate the cost of
thousands of seeded runs; callers check `enabled` before building a line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

from raft.core.types import Entry, EntryType

if TYPE_CHECKING:
    from raft.sim.cluster import Cluster


class Trace:
    """Collects one line per notable event; optionally echoes each line to a stream as it happens."""

    def __init__(self, enabled: bool = False, out: TextIO | None = None, core_lines: bool = False) -> None:
        self.enabled = enabled
        self.out = out
        # Also record the core's own log lines (every vote, rejection and probe): for debugging.
        self.core_lines = enabled and core_lines
        self.lines: list[str] = []

    def bind(self, cluster: Cluster) -> None:
        """Called once by the cluster it narrates; the step-through viewer's recorder keeps it."""

    def note(self, tick: int, text: str) -> None:
        """Record `text` as happening at `tick` of the simulated clock."""
        if not self.enabled:
            return
        line = f"[t={tick:>4}] {text}"
        self.lines.append(line)
        if self.out is not None:
            print(line, file=self.out)

    def text(self) -> str:
        return "\n".join(self.lines)


def describe_entry(entry: Entry) -> str:
    """`index@term payload`, e.g. `7@3 p12` or `1@1 conf` or `5@2 (empty)`."""
    if entry.type is EntryType.CONF_CHANGE:
        payload = "conf-change"
    elif not entry.data:
        payload = "(empty)"
    else:
        payload = entry.data.decode("utf-8", "replace")
    return f"{entry.index}@{entry.term} {payload}"


def describe_entries(entries: tuple[Entry, ...] | list[Entry]) -> str:
    """A short list for a trace line; long runs are elided in the middle."""
    if len(entries) <= 4:
        return ", ".join(describe_entry(e) for e in entries)
    head = ", ".join(describe_entry(e) for e in entries[:2])
    return f"{head}, ... {describe_entry(entries[-1])} ({len(entries)} entries)"
