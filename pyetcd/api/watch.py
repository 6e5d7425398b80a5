"""The Watch service: one bidirectional stream carries many watchers.

Each watcher has its own task that takes event batches from the store and puts them on
the stream's bounded send queue. A slow client therefore only fills its own queue; its
watchers then stop taking batches, the store notices they fall behind and catches them up
from its history later, so neither writers nor other clients ever wait for it.

Ordering: a watcher's "created" answer is queued before its task starts, and the queue is
first in, first out, so a client never sees events for a watch ID it has not been told of.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from pyetcd import errors
from pyetcd.api.server_api import EtcdServerApi
from pyetcd.limits import GRPC_OVERHEAD_BYTES

AUTO_WATCH_ID = 0
"""A create request with watch_id 0 lets the server pick the ID."""

PROGRESS_WATCH_ID = -1
"""The watch ID of a progress notification that speaks for every watcher on the stream
(clientv3's InvalidWatchID); also the ID of a create that failed."""


SEND_QUEUE_RESPONSES = 64
"""Responses a stream buffers for a slow client before its watchers stop taking batches."""

ERR_DUPLICATE_WATCH_ID = "mvcc: duplicate watch ID provided on the WatchStream"
ERR_EMPTY_WATCHER_RANGE = "mvcc: watcher range is empty"


def _varint_size(value: int) -> int:
    size = 1
    while value >= 0x80:
        value >>= 7
        size += 1
    return size


def _event_field_size(event: Any) -> int:
    """Bytes an event adds to a WatchResponse: tag, length prefix, body."""
    body = int(event.ByteSize())
    return 1 + _varint_size(body) + body


def fragment_response(response: rpc_pb2.WatchResponse, max_bytes: int) -> list[rpc_pb2.WatchResponse]:
    """Split a response larger than `max_bytes` into several, each but the last marked `fragment`.

    As etcd does, a response with fewer than two events is never split, and each fragment
    holds at least one event even if that one alone is too large.
    """
    if response.ByteSize() < max_bytes or len(response.events) < 2:
        return [response]
    shell = rpc_pb2.WatchResponse()
    shell.CopyFrom(response)
    del shell.events[:]
    shell.fragment = True
    base_size = shell.ByteSize()
    events = list(response.events)
    parts: list[rpc_pb2.WatchResponse] = []
    index = 0
    while index < len(events):
        part = rpc_pb2.WatchResponse()
        part.CopyFrom(shell)
        size = base_size
        while index < len(events):
            added = _event_field_size(events[index])
            if len(part.events) >= 1 and size + added >= max_bytes:
                break
            part.events.append(events[index])
            size += added
            index += 1
        parts.append(part)
    parts[-1].fragment = False
    return parts


@dataclass(eq=False)
class _Watch:
    """One watcher on a stream, as the stream tracks it."""

    watch_id: int
    watcher: Any  # a storage.mvcc Watcher: next_batch, cancel, synced, canceled, compacted, compact_revision
    progress_notify: bool
    fragment: bool
    task: asyncio.Task[None] | None = None
    holding_batch: bool = False  # took a batch from the store that is not queued yet
    events_since_tick: bool = False  # a progress notification is due only after a quiet interval

    @property
    def synced(self) -> bool:
        """Caught up: the store has offered every event up to its current revision and this
        stream has queued all of them."""
        return not self.holding_batch and bool(self.watcher.synced)


WATCH_AUTH_REASONS = frozenset({errors.ErrGRPCInvalidAuthToken, errors.ErrGRPCAuthOldRevision, errors.ErrGRPCUserEmpty})


def watch_refusal_reason(err: errors.EtcdError) -> str:
    """The cancel reason of a watch the caller may not create: one of these three, else "permission denied",
    written as etcd writes a gRPC status error's text (`rpc error: code = PermissionDenied desc = ...`)."""
    refusal = err if err in WATCH_AUTH_REASONS else errors.ErrGRPCPermissionDenied
    go_code = "".join(word.capitalize() for word in refusal.code.name.split("_"))
    return f"rpc error: code = {go_code} desc = {refusal.message}"


@dataclass(eq=False)
class WatchStream:
    """The server side of one Watch RPC."""

    etcd: EtcdServerApi
    progress_interval: float
    max_response_bytes: int
    queue_size: int = SEND_QUEUE_RESPONSES
    _watches: dict[int, _Watch] = field(default_factory=dict)
    _compacted_ids: set[int] = field(default_factory=set)  # canceled as compacted; the client has not canceled them
    _next_id: int = 0
    _progress_requested: bool = False
    _outbox: asyncio.Queue[rpc_pb2.WatchResponse | None] = field(init=False)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._outbox = asyncio.Queue(maxsize=self.queue_size)

    # --- lifecycle ---

    def start(self, requests: AsyncIterator[rpc_pb2.WatchRequest]) -> None:
        self._tasks.append(asyncio.create_task(self._read(requests)))
        if self.progress_interval > 0:
            self._tasks.append(asyncio.create_task(self._tick()))

    async def next_responses(self) -> list[rpc_pb2.WatchResponse] | None:
        """The next answer(s) to send, header filled and fragmented as asked; None ends the RPC."""
        response = await self._outbox.get()
        if response is None:
            return None
        if not response.HasField("header"):
            # Event batches carry the store's revision at the moment they go out.
            response.header.CopyFrom(self.etcd.header())
        watch = self._watches.get(response.watch_id)
        if watch is not None and watch.fragment and len(response.events) > 1:
            return fragment_response(response, self.max_response_bytes)
        return [response]

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for watch in list(self._watches.values()):
            self._drop(watch)

    # --- requests from the client ---

    async def _read(self, requests: AsyncIterator[rpc_pb2.WatchRequest]) -> None:
        try:
            async for request in requests:
                kind = request.WhichOneof("request_union")
                if kind == "create_request":
                    await self._create(request.create_request)
                elif kind == "cancel_request":
                    await self._cancel(request.cancel_request.watch_id)
                elif kind == "progress_request":
                    await self._request_progress()
                # etcd ignores requests of a kind it does not know, keeping the stream up.
        except asyncio.CancelledError:
            raise
        except Exception:
            await self._outbox.put(None)  # the client's side broke: end the RPC
        # A client that only half-closes keeps receiving events, as with etcd.

    def _allocate_id(self, requested: int) -> int | None:
        if requested != AUTO_WATCH_ID:
            return None if self._id_in_use(requested) else requested
        while self._id_in_use(self._next_id):
            self._next_id += 1
        watch_id = self._next_id
        self._next_id += 1
        return watch_id

    def _id_in_use(self, watch_id: int) -> bool:
        """etcd keeps a compacted watcher's ID until the client cancels it."""
        return watch_id in self._watches or watch_id in self._compacted_ids

    async def _refuse_create(self, reason: str) -> None:
        await self._outbox.put(rpc_pb2.WatchResponse(
            header=self.etcd.header(), watch_id=PROGRESS_WATCH_ID, created=True, canceled=True,
            cancel_reason=reason))

    async def _create(self, create: rpc_pb2.WatchCreateRequest) -> None:
        key = create.key or b"\x00"  # no key: watch from the smallest key
        range_end = create.range_end
        try:
            await self.etcd.check_watch_permitted(key, range_end)
        except errors.EtcdError as err:
            await self._refuse_create(watch_refusal_reason(err))
            return
        if range_end not in (b"", b"\x00") and key >= range_end:
            await self._refuse_create(ERR_EMPTY_WATCHER_RANGE)
            return
        watch_id = self._allocate_id(create.watch_id)
        if watch_id is None:
            await self._refuse_create(ERR_DUPLICATE_WATCH_ID)
            return
        # etcd's compacted revision is -1 until the first compaction, and a watcher is compacted
        # when it starts below it; -1 on such a store watches from the next revision, like 0.
        compacted_at = int(self.etcd.store.compact_revision) or -1
        if create.start_revision < 0 and create.start_revision < compacted_at:
            await self._create_compacted(watch_id, compacted_at)
            return
        filters = set(create.filters)
        try:
            watcher = self.etcd.store.watch(
                key, range_end, create.start_revision, prev_kv=create.prev_kv,
                filter_put=rpc_pb2.WatchCreateRequest.NOPUT in filters,
                filter_delete=rpc_pb2.WatchCreateRequest.NODELETE in filters)
        except Exception as err:
            await self._refuse_create(errors.to_etcd_error(err).message)
            return
        watch = _Watch(watch_id, watcher, create.progress_notify, create.fragment)
        self._watches[watch_id] = watch
        await self._outbox.put(rpc_pb2.WatchResponse(header=self.etcd.header(), watch_id=watch_id,
                                                     created=True))
        if watcher.compacted:
            await self._cancel_compacted(watch)
            return
        watch.task = asyncio.create_task(self._feed(watch))

    async def _create_compacted(self, watch_id: int, compact_revision: int) -> None:
        """A negative start revision below the compacted one: etcd creates the watch, then cancels it
        as compacted, naming that revision."""
        self._compacted_ids.add(watch_id)
        await self._outbox.put(rpc_pb2.WatchResponse(header=self.etcd.header(), watch_id=watch_id,
                                                     created=True))
        await self._outbox.put(rpc_pb2.WatchResponse(header=self._compacted_header(), watch_id=watch_id,
                                                     canceled=True, compact_revision=compact_revision))

    async def _cancel(self, watch_id: int) -> None:
        watch = self._watches.get(watch_id)
        if watch is not None:
            self._drop(watch)
        elif watch_id in self._compacted_ids:
            self._compacted_ids.discard(watch_id)
        else:
            return  # etcd stays silent about an unknown watch ID
        await self._outbox.put(rpc_pb2.WatchResponse(header=self.etcd.header(), watch_id=watch_id,
                                                     canceled=True))
        await self._maybe_send_requested_progress()

    async def _cancel_compacted(self, watch: _Watch) -> None:
        """The watcher wants history the store has compacted away: say where history starts, and stop."""
        compact_revision = int(watch.watcher.compact_revision)
        self._drop(watch)
        self._compacted_ids.add(watch.watch_id)
        await self._outbox.put(rpc_pb2.WatchResponse(
            header=self._compacted_header(), watch_id=watch.watch_id, canceled=True,
            compact_revision=compact_revision))

    def _compacted_header(self) -> rpc_pb2.ResponseHeader:
        """etcd's store sends a compacted watcher's cancel with no revision, so its header has none."""
        header = self.etcd.header()
        header.ClearField("revision")
        return header

    def _drop(self, watch: _Watch) -> None:
        if self._watches.get(watch.watch_id) is watch:
            del self._watches[watch.watch_id]
        if watch.task is not None and watch.task is not asyncio.current_task():
            watch.task.cancel()
        with contextlib.suppress(Exception):
            watch.watcher.cancel()

    # --- events from the store ---

    async def _feed(self, watch: _Watch) -> None:
        while True:
            watch.holding_batch = False
            await self._maybe_send_requested_progress()
            try:
                events = await watch.watcher.next_batch()
            except Exception as err:
                if errors.to_etcd_error(err) == errors.ErrGRPCCompacted:
                    await self._cancel_compacted(watch)
                else:
                    self._drop(watch)
                return
            if not events:
                if watch.watcher.canceled:
                    return
                continue
            watch.holding_batch = True
            watch.events_since_tick = True
            await self._outbox.put(rpc_pb2.WatchResponse(watch_id=watch.watch_id, events=events))

    # --- progress notifications ---

    def _all_synced(self) -> bool:
        return all(watch.synced for watch in self._watches.values())

    async def _request_progress(self) -> None:
        """A client asked where the stream stands: answer once every watcher is caught up, so the
        revision it is told is one below which it has seen every event (etcd's rule)."""
        self._progress_requested = True
        await self._maybe_send_requested_progress()

    async def _maybe_send_requested_progress(self) -> None:
        if self._progress_requested and self._all_synced():
            self._progress_requested = False
            # The header is fixed now, while every watcher is known to be caught up.
            await self._outbox.put(rpc_pb2.WatchResponse(header=self.etcd.header(),
                                                         watch_id=PROGRESS_WATCH_ID))

    async def _tick(self) -> None:
        while True:
            # Up to 10% jitter keeps streams created together from notifying together.
            await asyncio.sleep(self.progress_interval * (1 + random.random() / 10))
            for watch in list(self._watches.values()):
                if not watch.progress_notify:
                    continue
                if not watch.events_since_tick and watch.synced:
                    await self._outbox.put(rpc_pb2.WatchResponse(header=self.etcd.header(),
                                                                 watch_id=watch.watch_id))
                watch.events_since_tick = False


class WatchServicer(rpc_pb2_grpc.WatchServicer):
    """etcdserverpb.Watch."""

    def __init__(self, etcd: EtcdServerApi, *, progress_interval: float | None = None) -> None:
        self._etcd = etcd
        self._progress_interval = progress_interval

    async def Watch(self, request_iterator: AsyncIterator[rpc_pb2.WatchRequest],  # noqa: N802
                    context: Any) -> AsyncIterator[rpc_pb2.WatchResponse]:
        config = self._etcd.config
        interval = (config.watch_progress_notify_interval_s if self._progress_interval is None
                    else self._progress_interval)
        stream = WatchStream(self._etcd, interval, config.max_request_bytes + GRPC_OVERHEAD_BYTES)
        stream.start(request_iterator)
        try:
            while True:
                responses = await stream.next_responses()
                if responses is None:
                    return
                for response in responses:
                    yield response
        finally:
            stream.close()
