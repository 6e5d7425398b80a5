"""A seeded, lossy network between simulated members.

Raft must stay safe when messages are dropped, duplicated, delayed or reordered
and when the network partitions (§5.1 "messages may be lost, duplicated, reordered").
Every random choice comes from the run's one `random.Random`, so a seed replays exactly.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from raft.core.types import Message


@dataclass(frozen=True, slots=True)
class FaultRates:
    """Probabilities applied to each message at send time; `max_delay` is in ticks."""

    drop: float = 0.0
    duplicate: float = 0.0
    delay: float = 0.0
    max_delay: int = 3
    reorder: bool = False

    @property
    def healthy(self) -> bool:
        return self.drop == 0.0 and self.duplicate == 0.0 and self.delay == 0.0 and not self.reorder


HEALTHY = FaultRates()


@dataclass(order=True, slots=True)
class _InFlight:
    deliver_at: int
    seq: int
    message: Message = field(compare=False)


class Network:
    """Messages in flight, the links that are cut, and the fault rates in force."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._queue: list[_InFlight] = []
        self._seq = 0
        self.faults = HEALTHY
        self.blocked: set[tuple[int, int]] = set()
        self.sent = 0
        self.dropped = 0
        # Told each message's fate at send time ("cut", "dropped", or its delivery delays); only the
        # step-through viewer sets it, so ordinary runs pay nothing for it.
        self.observer: Callable[[Message, str, tuple[int, ...]], None] | None = None

    # -- links ---------------------------------------------------------------------------------

    def link_open(self, src: int, dst: int) -> bool:
        return (src, dst) not in self.blocked

    def partition(self, side_a: Iterable[int], side_b: Iterable[int]) -> None:
        """Cut every link between the two sides, both ways."""
        b = list(side_b)
        for x in side_a:
            for y in b:
                self.blocked.add((x, y))
                self.blocked.add((y, x))

    def block(self, src: int, dst: int) -> None:
        """A one-way cut: `src` can no longer reach `dst`, but `dst` still reaches `src`."""
        self.blocked.add((src, dst))

    def isolate(self, member: int, others: Iterable[int]) -> None:
        self.partition([member], [o for o in others if o != member])

    def heal(self) -> None:
        self.blocked.clear()

    # -- traffic -------------------------------------------------------------------------------

    def send(self, msg: Message, now: int) -> bool:
        """Queue `msg` for delivery; returns False when it was lost at once (cut link or drop)."""
        self.sent += 1
        f = self.faults
        cut = not self.link_open(msg.sender, msg.to)
        if cut or (f.drop and self._rng.random() < f.drop):
            self.dropped += 1
            if self.observer is not None:
                self.observer(msg, "cut" if cut else "dropped", ())
            return False
        copies = 2 if f.duplicate and self._rng.random() < f.duplicate else 1
        delays: list[int] = []
        for _ in range(copies):
            delay = self._rng.randint(1, f.max_delay) if f.delay and self._rng.random() < f.delay else 0
            delays.append(delay)
            self._seq += 1
            heapq.heappush(self._queue, _InFlight(now + delay, self._seq, msg))
        if self.observer is not None:
            self.observer(msg, "sent", tuple(delays))
        return True

    def take_due(self, now: int) -> list[Message]:
        """Every message due by `now`, in send order unless reordering is on."""
        due: list[Message] = []
        while self._queue and self._queue[0].deliver_at <= now:
            due.append(heapq.heappop(self._queue).message)
        if self.faults.reorder and len(due) > 1:
            self._rng.shuffle(due)
        return due

    def in_flight(self) -> int:
        return len(self._queue)
