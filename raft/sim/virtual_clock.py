"""Virtual time for the asyncio driver: an event loop whose clock moves only when it would sleep.

The production driver (raft/node.py) reads time from its event loop and writes its log
through an executor. Run on `VirtualClockLoop` with an `InlineExecutor`, nothing depends
on the machine: timers fire in virtual time, in order, and the log is written on the
loop's own thread, so the same seed replays the same run exactly.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class InlineExecutor(Executor):
    """Runs each submitted call at once, on the caller's thread (a log writer with no thread)."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as err:  # the caller sees it through the future, as with a thread
            future.set_exception(err)
        return future


class _VirtualSelector(selectors.DefaultSelector):
    """Polls without blocking; a wait the loop asks for moves the virtual clock instead."""

    clock: VirtualClockLoop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            raise RuntimeError("virtual clock: nothing is scheduled, the simulation would wait forever")
        if timeout > 0:
            self.clock.now += timeout
        events: list[tuple[selectors.SelectorKey, int]] = super().select(0)
        return events


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """An event loop on virtual time, starting at 0."""

    def __init__(self) -> None:
        selector = _VirtualSelector()
        selector.clock = self
        self.now = 0.0
        super().__init__(selector)

    def time(self) -> float:
        return self.now

    def run_until_idle(self, max_rounds: int = 100_000) -> None:
        """Run callbacks and timers due now, without moving the clock, until none is left."""
        for _ in range(max_rounds):
            if not self._has_due_work():
                return
            self.call_soon(self.stop)
            self.run_forever()
        raise RuntimeError(f"virtual clock: still busy after {max_rounds} rounds at t={self.now}")

    def advance(self, seconds: float) -> None:
        """Let `seconds` of virtual time pass, firing every timer due on the way."""
        self.run_until_complete(asyncio.sleep(seconds))
        self.run_until_idle()

    def _has_due_work(self) -> bool:
        # The loop's own queues (CPython's BaseEventLoop): ready callbacks, and timers by due time.
        ready: Any = getattr(self, "_ready")  # noqa: B009
        scheduled: Any = getattr(self, "_scheduled")  # noqa: B009
        return bool(ready) or any(not h.cancelled() and h.when() <= self.now for h in scheduled[:1])
