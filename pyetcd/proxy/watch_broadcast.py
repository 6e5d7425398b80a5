"""Watch coalescing: downstream watchers of the same range share one upstream watch.

A broadcast is one upstream watch on [key, range_end). A new watcher joins an existing broadcast when
it can be served from that broadcast's events without missing any:

- before the upstream watch is created, when it asks for the same start revision;
- after, when it asks for "now" (it starts at the broadcast's next revision), or for a start revision
  the broadcast has not passed yet (events before it are held back from this watcher).

Otherwise it gets a broadcast of its own. The upstream watch always asks for prev_kv and progress
notifications, so each watcher's options (prev_kv, filters, progress_notify) are applied per watcher.
If the upstream stream breaks, it is re-created on the next endpoint from the next revision not yet
delivered, so watchers see no gap and no duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import grpc.aio

from etcdpb.etcdserverpb import rpc_pb2
from etcdpb.mvccpb import kv_pb2
from pyetcd.proxy.upstream import Metadata, Upstream

log = logging.getLogger("pyetcd.grpcproxy")

WATCH = "/etcdserverpb.Watch/Watch"

# Upstream failures after which the watch is re-created elsewhere rather than canceled.
_RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN,
                        grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED})
_RETRY_BACKOFF = (0.05, 1.0)


@dataclass(frozen=True, slots=True)
class BroadcastKey:
    """What must match for watchers to share an upstream watch (the metadata carries the auth token)."""

    metadata: Metadata
    key: bytes
    range_end: bytes


@dataclass(eq=False, slots=True)
class Receiver:
    """One downstream watcher as a broadcast sees it."""

    watch_id: int
    # 0 means "from now".
    start_revision: int
    prev_kv: bool
    progress_notify: bool
    filters: frozenset[int]
    # Hands a response to the watcher's stream (which rewrites keys for the namespace, if any).
    deliver: Callable[[rpc_pb2.WatchResponse], None]
    # Called once when the broadcast ends this watcher (compaction, cancel by the cluster).
    on_closed: Callable[[Receiver], None]
    # Events before this revision are not this watcher's (it joined after them).
    min_revision: int = 0
    broadcast: WatchBroadcast | None = field(default=None, repr=False)


_DROPPED_BY_FILTER: dict[int, int] = {
    rpc_pb2.WatchCreateRequest.NOPUT: kv_pb2.Event.PUT,
    rpc_pb2.WatchCreateRequest.NODELETE: kv_pb2.Event.DELETE,
}


class WatchBroadcast:
    """One upstream watch and the downstream watchers fed from it."""

    def __init__(self, hub: WatchHub, key: BroadcastKey, start_revision: int) -> None:
        self._hub = hub
        self.key = key
        self.start_revision = start_revision
        self.receivers: set[Receiver] = set()
        # Watchers waiting for the upstream watch's created response.
        self.pending: list[Receiver] = []
        self.created = False
        # The first revision not yet delivered (0 while unknown: a "now" watch not yet created).
        self.next_revision = start_revision
        self.last_header = rpc_pb2.ResponseHeader()
        self.closed = False
        self._task = asyncio.get_running_loop().create_task(self._run())

    # --- membership ---

    def try_add(self, receiver: Receiver) -> bool:
        """Take `receiver` on if this broadcast can serve it without missing events."""
        if self.closed:
            return False
        start = receiver.start_revision
        if not self.created:
            if start != self.start_revision:
                return False
            self.pending.append(receiver)
            receiver.broadcast = self
            return True
        if start == 0:
            receiver.min_revision = self.next_revision
            header = rpc_pb2.ResponseHeader()
            header.CopyFrom(self.last_header)
            # Everything up to here has been delivered, so "now" for this watcher is this revision.
            header.revision = self.next_revision - 1
        elif start >= self.next_revision:
            receiver.min_revision = start
            header = self.last_header
        else:
            return False
        self.receivers.add(receiver)
        receiver.broadcast = self
        receiver.deliver(rpc_pb2.WatchResponse(header=header, watch_id=receiver.watch_id, created=True))
        return True

    def remove(self, receiver: Receiver) -> None:
        self.receivers.discard(receiver)
        if receiver in self.pending:
            self.pending.remove(receiver)
        receiver.broadcast = None
        if not self.receivers and not self.pending:
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._task.cancel()
            self._hub.forget(self)

    async def wait_closed(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    # --- the upstream watch ---

    async def _run(self) -> None:
        upstream = self._hub.upstream
        backoff = _RETRY_BACKOFF[0]
        while not self.closed:
            index, call = upstream.stream_stream(WATCH, rpc_pb2.WatchResponse.FromString,
                                                 metadata=self.key.metadata)
            self._hub.upstream_watches_opened += 1
            try:
                await call.write(rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(
                    key=self.key.key, range_end=self.key.range_end, start_revision=self.next_revision,
                    prev_kv=True, progress_notify=True)))
                async for response in call:
                    backoff = _RETRY_BACKOFF[0]
                    self._on_response(response)
                    if self.closed:
                        return
                log.warning("upstream watch stream on %s ended; re-creating it", upstream.targets[index])
                upstream.report_failure(index)
            except grpc.aio.AioRpcError as err:
                if err.code() not in _RETRYABLE:
                    self._end_all(rpc_pb2.WatchResponse(header=self.last_header, canceled=True,
                                                        cancel_reason=err.details() or ""))
                    return
                log.warning("upstream watch on %s failed (%s); re-creating it on the next endpoint",
                            upstream.targets[index], err.details())
                upstream.report_failure(index)
            finally:
                call.cancel()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _RETRY_BACKOFF[1])

    def _on_response(self, response: rpc_pb2.WatchResponse) -> None:
        if response.created and not response.canceled:
            if not self.created:
                self._on_created(response)
            # A re-created watch resumes where delivery stopped; its created response says nothing new.
            return
        if response.canceled or response.compact_revision:
            if not self.created:
                # Refused at creation: the pending watchers learn it from the same response.
                self.created = True
                self.receivers.update(self.pending)
                self.pending.clear()
            self._end_all(response)
            return
        if response.header.revision:
            self.last_header = response.header
        if response.events:
            self.next_revision = max(self.next_revision, response.events[-1].kv.mod_revision + 1)
        elif not response.fragment:
            # A progress notification: everything up to the header's revision has been delivered.
            self.next_revision = max(self.next_revision, response.header.revision + 1)
        for receiver in list(self.receivers):
            out = _for_receiver(response, receiver)
            if out is not None:
                receiver.deliver(out)

    def _on_created(self, response: rpc_pb2.WatchResponse) -> None:
        self.created = True
        self.last_header = response.header
        if self.start_revision == 0:
            self.next_revision = response.header.revision + 1
        for receiver in self.pending:
            receiver.min_revision = self.start_revision or self.next_revision
            self.receivers.add(receiver)
            receiver.deliver(rpc_pb2.WatchResponse(header=response.header, watch_id=receiver.watch_id,
                                                   created=True))
        self.pending.clear()

    def _end_all(self, response: rpc_pb2.WatchResponse) -> None:
        """The cluster ended the watch (compaction, refusal): every watcher gets the same end."""
        ended = list(self.receivers) + self.pending
        self.receivers.clear()
        self.pending.clear()
        for receiver in ended:
            out = rpc_pb2.WatchResponse()
            out.CopyFrom(response)
            out.watch_id = receiver.watch_id
            out.canceled = True
            del out.events[:]
            receiver.broadcast = None
            receiver.deliver(out)
            receiver.on_closed(receiver)
        self.close()


def _for_receiver(response: rpc_pb2.WatchResponse, receiver: Receiver) -> rpc_pb2.WatchResponse | None:
    """The response as this watcher should see it, or None when nothing in it is for this watcher."""
    if not response.events:
        if not receiver.progress_notify:
            return None
        return rpc_pb2.WatchResponse(header=response.header, watch_id=receiver.watch_id)
    dropped = {_DROPPED_BY_FILTER[f] for f in receiver.filters if f in _DROPPED_BY_FILTER}
    events = [event for event in response.events
              if event.kv.mod_revision >= receiver.min_revision and event.type not in dropped]
    if not events:
        return None
    out = rpc_pb2.WatchResponse(header=response.header, watch_id=receiver.watch_id, events=events,
                                fragment=response.fragment)
    if not receiver.prev_kv:
        for event in out.events:
            event.ClearField("prev_kv")
    return out


class WatchHub:
    """Every upstream watch the proxy holds, found by range so watchers can share them."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self._broadcasts: dict[BroadcastKey, list[WatchBroadcast]] = {}
        # Upstream Watch streams ever opened (re-creations after failover included).
        self.upstream_watches_opened = 0
        # Watchers that were served by an upstream watch another watcher had already opened.
        self.coalesced = 0

    @property
    def active_upstream_watches(self) -> int:
        """Upstream watches open right now; coalescing keeps this below the number of watchers."""
        return sum(len(broadcasts) for broadcasts in self._broadcasts.values())

    def add(self, key: BroadcastKey, receiver: Receiver) -> WatchBroadcast:
        for broadcast in self._broadcasts.get(key, []):
            if broadcast.try_add(receiver):
                self.coalesced += 1
                return broadcast
        broadcast = WatchBroadcast(self, key, receiver.start_revision)
        self._broadcasts.setdefault(key, []).append(broadcast)
        broadcast.try_add(receiver)
        return broadcast

    def forget(self, broadcast: WatchBroadcast) -> None:
        broadcasts = self._broadcasts.get(broadcast.key, [])
        if broadcast in broadcasts:
            broadcasts.remove(broadcast)
        if not broadcasts:
            self._broadcasts.pop(broadcast.key, None)

    async def close(self) -> None:
        everything = [b for broadcasts in self._broadcasts.values() for b in broadcasts]
        for broadcast in everything:
            broadcast.close()
        for broadcast in everything:
            await broadcast.wait_closed()
