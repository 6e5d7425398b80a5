"""Closing and reopening the LMDB environment (defragment, snapshot install, close) while other threads use it.

Short reads hold the store lock for as long as their LMDB transaction lives, and a swap holds that lock from
start to end. Longer users cannot hold the lock: a write batch keeps its transaction open across many calls,
and an fsync or a whole-store copy would stall every reader. They register with the gate instead; a swap
waits until none is left, and holds new ones back until it is done.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class SwapGate:
    """Counts the threads using the environment outside the store lock, and lets one swap at a time in."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._changed = threading.Condition(lock)
        self._users: dict[int, int] = {}  # thread ident -> how many uses it has going
        self._swaps_waiting = 0

    def enter(self) -> None:
        """Begin a use; waits while a swap is waiting or running, unless this thread already uses the environment
        (its earlier use holds the swap off, so waiting would never end)."""
        me = threading.get_ident()
        with self._lock:
            if me not in self._users:
                while self._swaps_waiting:
                    self._changed.wait()
            self._users[me] = self._users.get(me, 0) + 1

    def leave(self) -> None:
        me = threading.get_ident()
        with self._lock:
            left = self._users[me] - 1
            if left:
                self._users[me] = left
            else:
                del self._users[me]
            self._changed.notify_all()

    def leave_for(self, ident: int) -> None:
        """End a use begun by thread `ident` (a write batch aborted from another thread by close)."""
        with self._lock:
            left = self._users.get(ident, 0) - 1
            if left > 0:
                self._users[ident] = left
            else:
                self._users.pop(ident, None)
            self._changed.notify_all()

    @contextmanager
    def using(self) -> Iterator[None]:
        self.enter()
        try:
            yield
        finally:
            self.leave()

    @contextmanager
    def swapping(self) -> Iterator[None]:
        """Wait until no thread uses the environment; new uses wait until the body is done.

        The caller takes the store lock (and anything ordered before it) inside the body: a user may need
        those locks to finish, so they must not be held while waiting here.
        """
        with self._lock:
            if threading.get_ident() in self._users:
                raise RuntimeError("cannot close the store's environment while this thread is using it")
            self._swaps_waiting += 1
            try:
                while self._users:
                    self._changed.wait()
            except BaseException:
                self._swaps_waiting -= 1
                self._changed.notify_all()
                raise
        try:
            yield
        finally:
            with self._lock:
                self._swaps_waiting -= 1
                self._changed.notify_all()
