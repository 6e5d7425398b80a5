"""The simulated application: a replicated list of applied entries plus the membership.

It is deliberately the simplest state machine that still lets us check state-machine
safety (§5.4.3): two members agree iff their applied sequences agree index by index.
The app state is durable (it survives crashes), like a database that records the last
applied index beside its data; that index is what a restart passes as `Config.applied`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from raft.core.types import ConfState, EntryType


@dataclass(frozen=True, slots=True)
class AppliedEntry:
    """One applied log position as the state machine saw it."""

    index: int
    type: EntryType
    data: bytes


@dataclass(slots=True)
class AppState:
    """What a member has applied, in order, and the membership that resulted."""

    applied: list[AppliedEntry] = field(default_factory=list)
    applied_index: int = 0
    conf_state: ConfState = field(default_factory=ConfState)

    def apply(self, entry: AppliedEntry) -> None:
        self.applied.append(entry)
        self.applied_index = entry.index

    def encode(self) -> bytes:
        """Snapshot data: the whole applied sequence (small in a simulation)."""
        rows = [[e.index, int(e.type), e.data.hex()] for e in self.applied]
        return json.dumps(rows, separators=(",", ":")).encode()

    @staticmethod
    def decode(data: bytes, index: int, conf_state: ConfState) -> AppState:
        """The state a snapshot at `index` with membership `conf_state` stands for."""
        rows = json.loads(data.decode()) if data else []
        applied = [AppliedEntry(int(i), EntryType(int(t)), bytes.fromhex(d)) for i, t, d in rows]
        return AppState(applied=applied, applied_index=index, conf_state=conf_state)
