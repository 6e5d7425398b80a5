"""A linearizability checker for histories of register operations (pure: no I/O).

The search is Wing & Gong's, with Lowe's memoisation of (linearized set, state) pairs as
Porcupine does it: walk the history's call and return events in time order, linearize
any pending call the model accepts, and backtrack when a return is reached whose
operation was never linearized. Keys are independent registers, so a history is checked
one key at a time (P-compositionality), which keeps every search small.

An operation whose outcome the client never learned (a timeout, a dropped connection)
is open-ended, as in Jepsen: it may take effect at any time after its call, or never.
Reads with unknown outcome say nothing and are left out.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

GET = "get"
PUT = "put"
CAS = "cas"
DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Operation:
    """One client operation on one key, as the client saw it.

    `ret` is None when the outcome is unknown. `result` is what the client observed:
    get -> the value read (None: key absent); cas -> whether the compare succeeded;
    delete -> whether the key existed; put -> None.
    """

    key: str
    f: str
    call: float
    ret: float | None
    value: str | None = None
    expected: str | None = None
    result: str | bool | None = None
    process: int = 0
    index: int = 0

    def describe(self) -> str:
        """`put('a')`, `cas('a' -> 'b')`, `get() -> 'a'`, ... with its outcome."""
        if self.f == GET:
            text = "get()"
        elif self.f == PUT:
            text = f"put({self.value!r})"
        elif self.f == CAS:
            text = f"cas({_show(self.expected)} -> {self.value!r})"
        else:
            text = "delete()"
        if self.ret is None:
            return f"{text} -> ? (outcome unknown)"
        if self.f == GET:
            return f"{text} -> {_show(self.result)}"
        if self.f == CAS:
            return f"{text} -> {'ok' if self.result else 'compare failed'}"
        if self.f == DELETE:
            return f"{text} -> {'deleted' if self.result else 'nothing to delete'}"
        return f"{text} -> ok"


def _show(value: object) -> str:
    return "<absent>" if value is None else repr(value)


def step(state: str | None, op: Operation) -> tuple[bool, str | None]:
    """The register model: may `op` take effect in `state`, and what state follows?"""
    known = op.ret is not None
    if op.f == GET:
        return (not known or op.result == state), state
    if op.f == PUT:
        return True, op.value
    if op.f == CAS:
        swapped = state == op.expected
        if known and bool(op.result) != swapped:
            return False, state
        return True, (op.value if swapped else state)
    if op.f == DELETE:
        if known and bool(op.result) != (state is not None):
            return False, state
        return True, None
    raise ValueError(f"unknown operation {op.f!r}")


class Verdict(enum.Enum):
    LINEARIZABLE = "linearizable"
    NOT_LINEARIZABLE = "not linearizable"
    UNKNOWN = "unknown (search budget exhausted)"


@dataclass(slots=True)
class KeyResult:
    """The verdict for one key; for a violation, where the search got stuck."""

    key: str
    verdict: Verdict
    operations: int
    linearized_prefix: list[Operation] = field(default_factory=list)
    states_before_window: list[str | None] = field(default_factory=list)
    window: list[Operation] = field(default_factory=list)
    stuck: Operation | None = None

    def explain(self, context: int = 4) -> str:
        """The smallest failing window, readably: possible states, the pending operations, the culprit."""
        if self.verdict is not Verdict.NOT_LINEARIZABLE:
            return f"key {self.key!r}: {self.verdict.value} ({self.operations} operations)"
        lines = [f"key {self.key!r}: NOT linearizable ({self.operations} operations)"]
        if self.linearized_prefix:
            lines.append(f"  {len(self.linearized_prefix)} operations linearize before the window; "
                         f"the last of them:")
            lines.extend(f"    {_line(op)}" for op in self.linearized_prefix[-context:])
        shown = ", ".join(_show(s) for s in self.states_before_window)
        lines.append(f"  so when the window opens the register holds: {shown}")
        lines.append("  and no order of these operations is legal:")
        for op in self.window:
            marker = "   <-- returned, yet cannot be linearized" if op is self.stuck else ""
            lines.append(f"    {_line(op)}{marker}")
        return "\n".join(lines)


def _line(op: Operation) -> str:
    end = "      ?" if op.ret is None else f"{op.ret:9.3f}"
    return f"#{op.index:<6} p{op.process:<3} [{op.call:9.3f} .. {end}] {op.describe()}"


@dataclass(slots=True)
class HistoryResult:
    """Per-key results; the history is linearizable only if every key is."""

    keys: list[KeyResult]

    @property
    def verdict(self) -> Verdict:
        verdicts = {k.verdict for k in self.keys}
        if Verdict.NOT_LINEARIZABLE in verdicts:
            return Verdict.NOT_LINEARIZABLE
        if Verdict.UNKNOWN in verdicts:
            return Verdict.UNKNOWN
        return Verdict.LINEARIZABLE

    @property
    def violations(self) -> list[KeyResult]:
        return [k for k in self.keys if k.verdict is Verdict.NOT_LINEARIZABLE]

    def explain(self) -> str:
        bad = [k for k in self.keys if k.verdict is not Verdict.LINEARIZABLE]
        total = sum(k.operations for k in self.keys)
        head = f"{self.verdict.value}: {len(self.keys)} keys, {total} operations checked"
        return "\n".join([head, *(k.explain() for k in bad)])


# ---------------------------------------------------------------------------- the search

_CALL = 0
_RETURN = 1


class _Events:
    """A doubly linked list of call/return events in time order; lifting an operation
    unlinks both its events, unlifting puts them back (Porcupine's lift/unlift)."""

    def __init__(self, ops: Sequence[Operation]) -> None:
        events: list[tuple[float, int, int]] = []
        for i, op in enumerate(ops):
            events.append((op.call, _CALL, i))
            if op.ret is not None:
                events.append((op.ret, _RETURN, i))
        # At equal times a call sorts before a return: the two count as concurrent, which never
        # rejects a history a finer clock would accept.
        events.sort(key=lambda e: (e[0], e[1]))
        count = len(events)
        self.kind = [e[1] for e in events]
        self.op = [e[2] for e in events]
        self.head = count  # a sentinel before the first event
        self.next = [i + 1 for i in range(count)] + [0]
        self.prev = [i - 1 for i in range(count)] + [count]
        if count:
            self.prev[0] = count
            self.next[count - 1] = -1
        else:
            self.next[count] = -1
        self.call_at = [0] * len(ops)
        self.return_at = [-1] * len(ops)
        for position, (_, kind, i) in enumerate(events):
            if kind == _CALL:
                self.call_at[i] = position
            else:
                self.return_at[i] = position

    def first(self) -> int:
        return self.next[self.head]

    def _unlink(self, position: int) -> None:
        before, after = self.prev[position], self.next[position]
        self.next[before] = after
        if after != -1:
            self.prev[after] = before

    def _relink(self, position: int) -> None:
        before, after = self.prev[position], self.next[position]
        self.next[before] = position
        if after != -1:
            self.prev[after] = position

    def lift(self, op: int) -> None:
        self._unlink(self.call_at[op])
        if self.return_at[op] != -1:
            self._unlink(self.return_at[op])

    def unlift(self, op: int) -> None:
        if self.return_at[op] != -1:
            self._relink(self.return_at[op])
        self._relink(self.call_at[op])


def check_register(key: str, ops: Sequence[Operation], initial: str | None = None,
                   max_steps: int = 2_000_000) -> KeyResult:
    """Is this one register's history linearizable, starting from `initial`?"""
    ops = [op for op in ops if not (op.f == GET and op.ret is None)]
    events = _Events(ops)
    remaining_returns = sum(1 for op in ops if op.ret is not None)
    linearized = 0
    state = initial
    stack: list[tuple[int, str | None]] = []  # (operation, state before it)
    seen: set[tuple[int, str | None]] = set()
    best_depth = -1
    best: _Failure | None = None
    position = events.first()
    steps = 0
    while remaining_returns:
        steps += 1
        if steps > max_steps:
            return KeyResult(key, Verdict.UNKNOWN, len(ops))
        i = events.op[position]
        if events.kind[position] == _CALL:
            accepted, after = step(state, ops[i])
            if accepted:
                bits = linearized | (1 << i)
                if (bits, after) not in seen:
                    seen.add((bits, after))
                    stack.append((i, state))
                    linearized, state = bits, after
                    if ops[i].ret is not None:
                        remaining_returns -= 1
                    events.lift(i)
                    position = events.first()
                    continue
            position = events.next[position]
            continue
        # The return of an operation not yet linearized: this branch is dead.
        if len(stack) > best_depth:
            best_depth = len(stack)
            best = _Failure.at(ops, stack, state, i)
        elif len(stack) == best_depth and best is not None:
            best.merge(ops, stack, state, i)
        if not stack:
            assert best is not None
            return best.result(key, ops)
        i, state = stack.pop()
        linearized &= ~(1 << i)
        if ops[i].ret is not None:
            remaining_returns += 1
        events.unlift(i)
        position = events.next[events.call_at[i]]
    return KeyResult(key, Verdict.LINEARIZABLE, len(ops))


Stack = list[tuple[int, str | None]]
"""The linearization so far: (operation, register state before it)."""


@dataclass(slots=True)
class _Failure:
    """Where the deepest dead branch got stuck. The window opens at the first linearized
    operation that overlaps the stuck one; what came before it is settled history."""

    prefix: list[int]
    settled: frozenset[int]
    states: set[str | None]
    stuck: int

    @staticmethod
    def _split(ops: Sequence[Operation], stack: Stack, state: str | None,
               stuck: int) -> tuple[frozenset[int], str | None]:
        start = ops[stuck].call
        for position, (i, before) in enumerate(stack):
            ret = ops[i].ret
            # An operation of unknown outcome took effect where the search put it; it only
            # opens the window if it comes after one that overlaps the stuck operation.
            if ret is not None and ret >= start:
                return frozenset(i for i, _ in stack[:position]), before
        return frozenset(i for i, _ in stack), state

    @classmethod
    def at(cls, ops: Sequence[Operation], stack: Stack, state: str | None, stuck: int) -> _Failure:
        settled, before = cls._split(ops, stack, state, stuck)
        return cls([i for i, _ in stack], settled, {before}, stuck)

    def merge(self, ops: Sequence[Operation], stack: Stack, state: str | None, stuck: int) -> None:
        """An equally deep branch stuck on the same operation after the same settled history
        shows another state the register may hold when the window opens."""
        settled, before = self._split(ops, stack, state, stuck)
        if stuck == self.stuck and settled == self.settled:
            self.states.add(before)

    def result(self, key: str, ops: Sequence[Operation]) -> KeyResult:
        stuck_op = ops[self.stuck]
        assert stuck_op.ret is not None
        window = [op for i, op in enumerate(ops) if i not in self.settled and op.call <= stuck_op.ret]
        window.sort(key=lambda op: op.call)
        return KeyResult(key, Verdict.NOT_LINEARIZABLE, len(ops),
                         linearized_prefix=[ops[i] for i in self.prefix if i in self.settled],
                         states_before_window=sorted(self.states, key=lambda s: (s is not None, s or "")),
                         window=window, stuck=stuck_op)


def check_history(ops: Iterable[Operation], max_steps_per_key: int = 2_000_000) -> HistoryResult:
    """Check every key of a history on its own; each register starts absent."""
    by_key: dict[str, list[Operation]] = defaultdict(list)
    for op in ops:
        by_key[op.key].append(op)
    return HistoryResult([check_register(key, by_key[key], max_steps=max_steps_per_key)
                          for key in sorted(by_key)])
