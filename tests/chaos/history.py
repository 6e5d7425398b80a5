"""What happened during a run: client operations, watch events, faults and status samples.

Times are seconds since the run began on the harness's monotonic clock; every client
lives in the harness process, so all call and return times share that one clock.
Operations end ok, fail (certainly not applied: only reads are ever marked so) or info
(outcome unknown), in Jepsen's words. Everything can be written out as JSON lines.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.chaos.linearizability import GET, Operation

OK = "ok"
FAIL = "fail"
INFO = "info"


@dataclass(slots=True)
class OpRecord:
    """One client operation with everything the harness learned about it."""

    index: int
    process: int
    key: str
    f: str
    call: float
    member: int
    value: str | None = None
    expected: str | None = None
    ret: float | None = None
    status: str = ""
    result: str | bool | None = None
    revision: int = 0
    error: str = ""

    def operation(self) -> Operation | None:
        """The checker's view: None for an operation that certainly had no effect."""
        if self.status == FAIL or (self.status != OK and self.f == GET):
            return None
        ret = self.ret if self.status == OK else None
        return Operation(key=self.key, f=self.f, call=self.call, ret=ret, value=self.value,
                         expected=self.expected, result=self.result if self.status == OK else None,
                         process=self.process, index=self.index)


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One event as a watcher received it (etcd's mvccpb.Event, flattened)."""

    revision: int
    key: str
    type: str
    value: str
    create_revision: int
    mod_revision: int
    version: int


@dataclass(frozen=True, slots=True)
class FaultRecord:
    start: float
    end: float
    kind: str
    detail: str


@dataclass(frozen=True, slots=True)
class StatusSample:
    """A member's own view of the leader, from Maintenance.Status."""

    at: float
    member: int
    member_id: int
    term: int
    leader: int


@dataclass
class History:
    """The shared, append-only record of one run."""

    started: float = field(default_factory=time.monotonic)
    ops: list[OpRecord] = field(default_factory=list)
    faults: list[FaultRecord] = field(default_factory=list)
    status: list[StatusSample] = field(default_factory=list)
    watches: dict[int, list[WatchEvent]] = field(default_factory=dict)

    def now(self) -> float:
        return time.monotonic() - self.started

    def invoke(self, process: int, key: str, f: str, member: int, *, value: str | None = None,
               expected: str | None = None) -> OpRecord:
        record = OpRecord(len(self.ops), process, key, f, self.now(), member, value=value, expected=expected)
        self.ops.append(record)
        return record

    def complete(self, record: OpRecord, status: str, *, result: str | bool | None = None, revision: int = 0,
                 error: str = "") -> None:
        record.ret = self.now()
        record.status = status
        record.result = result
        record.revision = revision
        record.error = error

    def operations(self) -> list[Operation]:
        """The operations the linearizability checker must explain."""
        return [op for op in (r.operation() for r in self.ops) if op is not None]

    def dump(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        _write_lines(directory / "history.jsonl", (dataclasses.asdict(r) for r in self.ops))
        _write_lines(directory / "faults.jsonl", (dataclasses.asdict(f) for f in self.faults))
        _write_lines(directory / "status.jsonl", (dataclasses.asdict(s) for s in self.status))
        _write_lines(directory / "watches.jsonl", ({"watcher": w, **dataclasses.asdict(e)}
                                                   for w, events in sorted(self.watches.items()) for e in events))


def _write_lines(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row) + "\n")


def load_operations(path: Path) -> list[Operation]:
    """The checker's operations from a history.jsonl written by `History.dump`."""
    operations = []
    with open(path, encoding="utf-8") as rows:
        for line in rows:
            op = OpRecord(**json.loads(line)).operation()
            if op is not None:
                operations.append(op)
    return operations
