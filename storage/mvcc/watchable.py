"""Watchers of key ranges, kept in synced and unsynced groups (etcd's watchable_store.go, watcher_group.go).

A *synced* watcher has seen everything up to the current revision: each committed write batch offers it its
events, which it buffers until its consumer takes them. The buffer is bounded: when a batch would overflow
it, the watcher turns *unsynced* and the writer forgets it, so a slow consumer never holds up writes or other
watchers. An unsynced watcher is caught up from the stored history when its consumer asks for more, a bounded
chunk at a time, and becomes synced again once it reaches the current revision. A watcher that needs history
below the compacted revision is *compacted*: the server tells its client the compact revision and cancels it.

Events of one revision always travel together, in revision order, and each reaches a watcher exactly once:
``next_rev`` is the first revision a watcher has not been given, and nothing below it is offered again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from etcdpb.mvccpb import kv_pb2
from storage.mvcc.errors import CompactedError

Event = kv_pb2.Event

DEFAULT_BUFFER_EVENTS = 1024
"""Events a watcher may hold for its consumer before it falls back to catching up from history."""

CATCH_UP_SCAN = 4096
"""Stored revisions one catch-up step reads at most, so one step never holds the event loop for long."""


@dataclass(slots=True)
class HistoryChunk:
    """Stored events from some revision on, grouped by revision."""

    revisions: list[tuple[int, list[kv_pb2.Event]]]
    scanned_to: int
    """Every revision at or below this one was read (even those with no matching event)."""
    current_rev: int
    compact_rev: int


class History(Protocol):
    """What watchers need from the store: its revisions now and its stored past."""

    @property
    def current_revision(self) -> int: ...

    @property
    def compact_revision(self) -> int: ...

    def read_history(
        self, start_rev: int, match: Callable[[bytes], bool], max_events: int, max_scan: int
    ) -> HistoryChunk: ...

    def kv_at(self, key: bytes, rev: int) -> kv_pb2.KeyValue | None: ...


@dataclass(frozen=True, slots=True)
class KeyRange:
    """[key, end): ``end`` None is the key alone, b"" means no upper bound."""

    key: bytes
    end: bytes | None

    def contains(self, k: bytes) -> bool:
        if self.end is None:
            return k == self.key
        return k >= self.key and (not self.end or k < self.end)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Watcher:
    """Events on a key range from ``start_revision`` on; an async iterator of event batches.

    Each batch holds the events of one or more whole revisions in revision order. Events are shared between
    watchers: treat them as read-only. One consumer at a time.
    """

    def __init__(
        self,
        hub: WatcherHub,
        watch_id: int,
        key_range: KeyRange,
        start_revision: int,
        next_rev: int,
        *,
        prev_kv: bool,
        filter_put: bool,
        filter_delete: bool,
    ) -> None:
        self._hub = hub
        self.id = watch_id
        self.key_range = key_range
        self.start_revision = start_revision
        self.prev_kv = prev_kv
        self.filter_put = filter_put
        self.filter_delete = filter_delete
        self._next_rev = next_rev
        self._pending: deque[tuple[int, list[kv_pb2.Event]]] = deque()
        self._pending_events = 0
        self._synced = False
        self._compact_revision = 0
        self._compacted = False
        self._canceled = False
        self._waiter: asyncio.Future[None] | None = None

    @property
    def compacted(self) -> bool:
        """True once the history this watcher needs was compacted away; it delivers nothing more."""
        return self._compacted

    @property
    def compact_revision(self) -> int:
        """The store's compacted revision that made this watcher compacted (0 while it is not)."""
        return self._compact_revision

    @property
    def synced(self) -> bool:
        """Whether the consumer has been given every event up to the current revision (caught up)."""
        return self._synced and not self._pending

    @property
    def canceled(self) -> bool:
        return self._canceled

    def cancel(self) -> None:
        """Stop watching; a pending or later next_batch returns an empty batch."""
        self._hub.cancel(self)

    async def next_batch(self) -> list[kv_pb2.Event]:
        """The next events; [] once canceled. Raises CompactedError if the needed history is gone."""
        hub = self._hub
        while True:
            waiter: asyncio.Future[None] | None = None
            with hub.lock:
                if self._canceled:
                    return []
                if self._compacted:
                    raise CompactedError(self._compact_revision)
                if self._pending:
                    return hub.take_pending(self)
                if self._synced:
                    waiter = asyncio.get_running_loop().create_future()
                    self._waiter = waiter
            if waiter is None:
                hub.catch_up(self)
                await asyncio.sleep(0)  # let writers and other watchers run between catch-up steps
                continue
            try:
                await waiter
            finally:
                with hub.lock:
                    if self._waiter is waiter:
                        self._waiter = None

    def __aiter__(self) -> AsyncIterator[list[kv_pb2.Event]]:
        return self

    async def __anext__(self) -> list[kv_pb2.Event]:
        batch = await self.next_batch()
        if not batch:
            raise StopAsyncIteration
        return batch

    def _wanted(self, events: list[kv_pb2.Event]) -> list[kv_pb2.Event]:
        if not (self.filter_put or self.filter_delete):
            return events
        dropped = {Event.PUT} if self.filter_put else set()
        if self.filter_delete:
            dropped.add(Event.DELETE)
        return [ev for ev in events if ev.type not in dropped]

    def _wake(self) -> None:
        """Wake a consumer waiting in next_batch, from any thread (hub lock held)."""
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        self._waiter = None
        loop = waiter.get_loop()
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            waiter.set_result(None)
        else:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
                loop.call_soon_threadsafe(_resolve, waiter)


class WatcherHub:
    """All watchers of one store, in their synced and unsynced groups."""

    def __init__(self, history: History, buffer_events: int = DEFAULT_BUFFER_EVENTS) -> None:
        self.lock = threading.RLock()
        self.buffer_events = buffer_events
        self._history = history
        self._ids = itertools.count()
        self._synced_keys: dict[bytes, set[Watcher]] = {}
        self._synced_ranges: set[Watcher] = set()
        self._unsynced: set[Watcher] = set()

    def __len__(self) -> int:
        with self.lock:
            return sum(map(len, self._synced_keys.values())) + len(self._synced_ranges) + len(self._unsynced)

    def watch(
        self,
        key_range: KeyRange,
        start_revision: int,
        *,
        prev_kv: bool = False,
        filter_put: bool = False,
        filter_delete: bool = False,
    ) -> Watcher:
        with self.lock:
            current = self._history.current_revision
            behind = 0 < start_revision <= current
            # 0 (or less) means from the next revision on; a future start waits for that revision.
            next_rev = start_revision if behind else max(start_revision, current + 1)
            w = Watcher(
                self,
                next(self._ids),
                key_range,
                start_revision,
                next_rev,
                prev_kv=prev_kv,
                filter_put=filter_put,
                filter_delete=filter_delete,
            )
            compact = self._history.compact_revision
            if behind and next_rev < compact:
                w._compacted, w._compact_revision = True, compact
            elif behind:
                self._unsynced.add(w)
            else:
                self._add_synced(w)
            return w

    def _add_synced(self, w: Watcher) -> None:
        w._synced = True
        if w.key_range.end is None:
            self._synced_keys.setdefault(w.key_range.key, set()).add(w)
        else:
            self._synced_ranges.add(w)

    def _remove(self, w: Watcher) -> None:
        self._unsynced.discard(w)
        self._synced_ranges.discard(w)
        keys = self._synced_keys.get(w.key_range.key)
        if keys is not None:
            keys.discard(w)
            if not keys:
                del self._synced_keys[w.key_range.key]
        w._synced = False

    def cancel(self, w: Watcher) -> None:
        with self.lock:
            self._remove(w)
            w._canceled = True
            w._pending.clear()
            w._pending_events = 0
            w._wake()

    def close(self) -> None:
        with self.lock:
            watchers = [*self._unsynced, *self._synced_ranges, *itertools.chain(*self._synced_keys.values())]
            for w in watchers:
                self.cancel(w)

    def notify(self, batches: list[tuple[int, list[kv_pb2.Event]]]) -> None:
        """Offer a committed write batch's events (grouped by revision) to the synced watchers."""
        with self.lock:
            if not (self._synced_keys or self._synced_ranges):
                return
            for rev, events in batches:
                per_watcher: dict[Watcher, list[kv_pb2.Event]] = {}
                for ev in events:
                    k = ev.kv.key
                    for w in self._synced_keys.get(k, ()):
                        per_watcher.setdefault(w, []).append(ev)
                    for w in self._synced_ranges:
                        if w.key_range.contains(k):
                            per_watcher.setdefault(w, []).append(ev)
                for w, evs in per_watcher.items():
                    self._offer(w, rev, evs)

    def _offer(self, w: Watcher, rev: int, events: list[kv_pb2.Event]) -> None:
        if rev < w._next_rev:
            return
        events = w._wanted(events)
        if not events:
            w._next_rev = rev + 1
            return
        if w._pending_events and w._pending_events + len(events) > self.buffer_events:
            # The consumer is slow: stop buffering for it; it catches up from history from `rev` on.
            self._remove(w)
            self._unsynced.add(w)
            w._next_rev = rev
            return
        w._pending.append((rev, events))
        w._pending_events += len(events)
        w._next_rev = rev + 1
        w._wake()

    def catch_up(self, w: Watcher) -> None:
        """Read the next chunk of history for an unsynced watcher with nothing pending."""
        with self.lock:
            if w._synced or w._canceled or w._compacted or w._pending or w not in self._unsynced:
                return
            chunk = self._history.read_history(
                w._next_rev, w.key_range.contains, self.buffer_events, CATCH_UP_SCAN
            )
            if w._next_rev < chunk.compact_rev:
                self._remove(w)
                w._compacted, w._compact_revision = True, chunk.compact_rev
                w._wake()
                return
            for rev, events in chunk.revisions:
                wanted = w._wanted(events)
                if wanted:
                    w._pending.append((rev, wanted))
                    w._pending_events += len(wanted)
            w._next_rev = max(w._next_rev, chunk.scanned_to + 1)
            if chunk.scanned_to >= chunk.current_rev:
                self._unsynced.discard(w)
                self._add_synced(w)

    def take_pending(self, w: Watcher) -> list[kv_pb2.Event]:
        """Everything buffered for ``w`` as one batch (hub lock held)."""
        batch: list[kv_pb2.Event] = []
        while w._pending:
            batch.extend(w._pending.popleft()[1])
        w._pending_events = 0
        if w.prev_kv:
            batch = [self._with_prev_kv(ev) for ev in batch]
        return batch

    def _with_prev_kv(self, ev: kv_pb2.Event) -> kv_pb2.Event:
        # As etcd's watch server does: the key as it was one revision before the event.
        out = Event()
        out.CopyFrom(ev)
        prev = self._history.kv_at(ev.kv.key, ev.kv.mod_revision - 1)
        if prev is not None:
            out.prev_kv.CopyFrom(prev)
        return out

    def resync_all(self, offered_through: int) -> None:
        """Send every watcher back to catching up from history (the store's data was replaced)."""
        with self.lock:
            synced = [*self._synced_ranges, *itertools.chain(*self._synced_keys.values())]
            for w in synced:
                self._remove(w)
                w._next_rev = max(w._next_rev, offered_through + 1)
                self._unsynced.add(w)
                w._wake()
