"""Peer transport: Raft messages between members over gRPC.

Each peer gets one long-lived client stream fed from a bounded outbound queue, so
`send` never blocks the event loop: a full queue drops the message (Raft retries,
§5.3) and reports the peer unreachable. The stream reconnects with exponential
backoff capped at about a second, so a restarted peer is found quickly. Snapshots
travel on their own call in ~1 MiB chunks (etcd's separate snapshot path), with the
application's state put in place of the log store's metadata-only snapshot.
Peer URLs may be http, https, unix or unixs, as etcd's; the TLS side (certificates, which
peers are allowed) comes from the application through `TransportSecurity`.

The transport counts its work in a `PeerTraffic` (bytes and failures per peer, once per batch;
late heartbeats) and times a `Probe` call on each peer's stream connection every PROBE_INTERVAL_S,
as etcd's prober does on its peer connections; the application turns these into metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

import grpc

from etcdpb.raftpb import raft_pb2, raft_pb2_grpc
from raft.core.types import (
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)
from raft.peer_traffic import PeerTraffic

logger = logging.getLogger(__name__)

SENDER_KEY = "x-server-from"
"""Call metadata: the sending member's ID in hex (etcd's X-Server-From header)."""
CLUSTER_ID_KEY = "x-etcd-cluster-id"
"""Call metadata: the cluster ID in hex (etcd's X-Etcd-Cluster-ID header)."""
ACCEPTED_KEY = "x-raft-accepted"
"""Initial metadata the receiver sends once it has accepted a stream: the stream is healthy."""

ERR_MEMBER_REMOVED = "the member has been permanently removed from the cluster"
ERR_CLUSTER_ID_MISMATCH = "cluster ID mismatch"

OUTBOUND_QUEUE_SIZE = 1024
MAX_BATCH_MESSAGES = 256
MAX_BATCH_BYTES = 4 << 20
SNAPSHOT_CHUNK_BYTES = 1 << 20
MAX_GRPC_MESSAGE_BYTES = 64 << 20
BACKOFF_INITIAL = 0.05
BACKOFF_MAX = 1.0
"""Reconnect backoff cap: a restarted peer is found within about a second."""
DEFAULT_DIAL_TIMEOUT = 2.0
PROBE_INTERVAL_S = 4.0
"""How often a peer's round-trip time is measured (etcd's proberInterval: its read timeout less a second)."""
PROBE_TIMEOUT_S = 5.0
"""How long one connection attempt may take; etcd uses 1 s plus the election timeout."""

_BASE_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_BYTES),
    # Keepalive notices a silently dead peer (a partition, a killed host) on an idle connection.
    ("grpc.keepalive_time_ms", 5000),
    ("grpc.keepalive_timeout_ms", 5000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


def channel_options(dial_timeout: float) -> list[tuple[str, int]]:
    """Options for a peer channel whose connection attempts may each take `dial_timeout` seconds.

    gRPC uses its minimum reconnect backoff as the minimum connect timeout too, so that option
    (not the retry delay, which stays short) decides how slow a peer link may be and still work.
    """
    return [*_BASE_CHANNEL_OPTIONS, ("grpc.min_reconnect_backoff_ms", max(1, int(dial_timeout * 1000)))]

_SERVER_OPTIONS = [
    ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_BYTES),
    ("grpc.http2.min_ping_interval_without_data_ms", 1000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_ping_strikes", 0),
    # Two members configured with one peer port must fail loudly, as etcd does, not share it.
    ("grpc.so_reuseport", 0),
]


class RaftHandler(Protocol):
    """What a transport calls back into; the RaftNode implements it."""

    def receive(self, message: Message) -> None:
        """A message for the local member arrived from a peer."""
        ...

    def report_unreachable(self, peer_id: int) -> None:
        """Messages to `peer_id` were dropped (its queue was full or its stream broke)."""
        ...

    def report_snapshot(self, peer_id: int, failed: bool) -> None:
        """A snapshot send to `peer_id` finished."""
        ...

    def snapshot_to_send(self, message: Message) -> Snapshot:
        """The snapshot to put in the outgoing SNAP `message` (the application's applied state)."""
        ...


class TransportSecurity(Protocol):
    """TLS for peer traffic: what the listener presents and checks, and how a TLS peer is dialed."""

    @property
    def listens_securely(self) -> bool:
        """Whether there are certificates to serve https/unixs listen URLs with."""
        ...

    def server_credentials(self) -> grpc.ServerCredentials:
        ...

    def server_interceptors(self) -> list[Any]:
        """Checks run before each peer call (allowed CN/hostname, CRL)."""
        ...

    async def dial_credentials(self, url: str) -> grpc.ChannelCredentials | None:
        """Credentials for a peer URL; None for plain text."""
        ...


class Transport(Protocol):
    """How the RaftNode reaches its peers."""

    def attach(self, handler: RaftHandler) -> None:
        ...

    def send(self, messages: Sequence[Message]) -> None:
        """Queue messages for their `to` peers without blocking."""
        ...


# ----------------------------------------------------------------- wire format


def entry_to_pb(entry: Entry) -> raft_pb2.Entry:
    return raft_pb2.Entry(term=entry.term, index=entry.index, type=raft_pb2.EntryType.ValueType(entry.type),
                         data=entry.data)


def entry_from_pb(pb: raft_pb2.Entry) -> Entry:
    return Entry(term=pb.term, index=pb.index, type=EntryType(pb.type), data=pb.data)


def snapshot_metadata_to_pb(meta: SnapshotMetadata) -> raft_pb2.SnapshotMetadata:
    conf_state = raft_pb2.ConfState(voters=meta.conf_state.voters, learners=meta.conf_state.learners)
    return raft_pb2.SnapshotMetadata(index=meta.index, term=meta.term, conf_state=conf_state)


def snapshot_metadata_from_pb(pb: raft_pb2.SnapshotMetadata) -> SnapshotMetadata:
    conf_state = ConfState(voters=tuple(pb.conf_state.voters), learners=tuple(pb.conf_state.learners))
    return SnapshotMetadata(index=pb.index, term=pb.term, conf_state=conf_state)


def message_to_pb(message: Message, *, with_snapshot_data: bool = True) -> raft_pb2.Message:
    """The wire form of `message`; snapshot data is left out when it travels in chunks."""
    pb = raft_pb2.Message(
        type=raft_pb2.MessageType.ValueType(message.type), to=message.to, sender=message.sender,
        term=message.term,
        log_term=message.log_term, index=message.index, entries=[entry_to_pb(e) for e in message.entries],
        commit=message.commit, reject=message.reject, reject_hint=message.reject_hint,
        context=message.context,
    )
    if message.snapshot is not None:
        data = message.snapshot.data if with_snapshot_data else b""
        pb.snapshot.CopyFrom(raft_pb2.Snapshot(metadata=snapshot_metadata_to_pb(message.snapshot.metadata),
                                               data=data))
    return pb


def message_from_pb(pb: raft_pb2.Message) -> Message:
    snapshot = None
    if pb.HasField("snapshot"):
        snapshot = Snapshot(metadata=snapshot_metadata_from_pb(pb.snapshot.metadata), data=pb.snapshot.data)
    return Message(
        type=MessageType(pb.type), to=pb.to, sender=pb.sender, term=pb.term, log_term=pb.log_term,
        index=pb.index, entries=tuple(entry_from_pb(e) for e in pb.entries), commit=pb.commit,
        snapshot=snapshot, reject=pb.reject, reject_hint=pb.reject_hint, context=pb.context,
    )


def dialable_urls(peer_id: int, urls: Sequence[str]) -> list[str]:
    """A peer's URLs, leaving out (and logging) any this transport cannot dial.

    The URLs come from committed entries, so refusing them here would stop the member for good:
    a peer with no dialable URL simply stays unreachable, as a peer that is down would.
    """
    dialable = []
    for url in urls:
        try:
            url_to_target(url)
        except ValueError as err:
            logger.error("peer %x: %s; not dialing it", peer_id, err)
        else:
            dialable.append(url)
    return dialable


def url_to_target(url: str) -> str:
    """The gRPC target of a peer URL: `http(s)://127.0.0.1:2380` -> `127.0.0.1:2380`,
    `unix(s)://node1:2380` -> `unix:node1:2380` (a socket file, named as etcd names it)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as err:
        raise ValueError(f"unsupported peer URL {url!r}: {err}") from None
    if parts.scheme in ("unix", "unixs") and parts.netloc:
        return "unix:" + parts.netloc + parts.path
    if parts.scheme not in ("http", "https", "") or not parts.netloc:
        raise ValueError(f"unsupported peer URL {url!r}: expected http(s)://host:port or unix(s)://path")
    return parts.netloc


def url_is_secure(url: str) -> bool:
    return urlsplit(url).scheme in ("https", "unixs")


async def open_peer_channel(url: str, security: TransportSecurity | None,
                            options: Sequence[tuple[str, Any]] = ()) -> grpc.aio.Channel:
    """A channel to a peer URL: plain text for http/unix, TLS for https/unixs.

    Without `security` a TLS peer is verified against the system's CAs, as etcd's dialer does
    when no peer CA is given.
    """
    target = url_to_target(url)
    if security is not None:
        credentials = await security.dial_credentials(url)
    else:
        credentials = grpc.ssl_channel_credentials() if url_is_secure(url) else None
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=list(options))
    extra: list[tuple[str, Any]] = []
    hostname = urlsplit(url).hostname
    if target.startswith("unix:") and hostname:
        extra.append(("grpc.ssl_target_name_override", hostname))
    return grpc.aio.secure_channel(target, credentials, options=[*options, *extra])


def _approx_size(message: Message) -> int:
    return 64 + sum(len(e.data) + 24 for e in message.entries)


# --------------------------------------------------------------------- sending


class _StreamEnded:
    """Put on a peer's queue when its stream ends, to wake the writer so it reconnects."""


class _Peer:
    """The outbound side of one peer: a queue, a stream task with reconnect, snapshot sends."""

    def __init__(self, transport: GrpcTransport, peer_id: int, urls: list[str]) -> None:
        self.transport = transport
        self.peer_id = peer_id
        self.targets = dialable_urls(peer_id, urls)
        self.queue: asyncio.Queue[Message | _StreamEnded] = asyncio.Queue(maxsize=OUTBOUND_QUEUE_SIZE)
        self.active_since: float | None = None
        self._stream_was_up = False
        self._task: asyncio.Task[None] | None = None
        self._snapshot_tasks: set[asyncio.Task[None]] = set()
        self._next_target = 0

    def start(self) -> None:
        if self._task is None:
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self._run(), name=f"raft-peer-{self.peer_id:x}")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._snapshot_tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._task = None
        self.active_since = None

    def enqueue(self, message: Message) -> bool:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            return False
        return True

    def send_snapshot(self, message: Message) -> None:
        task = asyncio.get_running_loop().create_task(self._send_snapshot(message))
        self._snapshot_tasks.add(task)
        task.add_done_callback(self._snapshot_tasks.discard)

    def _target(self) -> str:
        target = self.targets[self._next_target % len(self.targets)]
        self._next_target += 1
        return target

    async def _run(self) -> None:
        if not self.targets:
            return  # nothing to dial: the peer stays inactive, and Raft sees it as unreachable
        backoff = BACKOFF_INITIAL
        while True:
            target = self._target()
            try:
                await self._stream(target)
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as err:
                self._on_stream_error(target, err.code(), err.details() or "")
            except Exception as err:  # a broken stream surfaces as several error types
                self._on_stream_error(target, None, repr(err))
            if self.active_since is not None:
                logger.info("peer %x became inactive", self.peer_id)
            if self._stream_was_up:
                backoff = BACKOFF_INITIAL  # a working stream broke: try again soon
                self._stream_was_up = False
            self.active_since = None
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    async def _stream(self, target: str) -> None:
        async with await self.transport.open_channel(target) as channel:
            stub = raft_pb2_grpc.RaftStub(channel)
            call = stub.Stream(metadata=self.transport.call_metadata())
            metadata = await call.initial_metadata()
            if metadata is None or ACCEPTED_KEY not in dict(metadata):
                await call  # raises the receiver's rejection
                return
            self.active_since = time.monotonic()
            self._stream_was_up = True
            logger.info("peer %x became active at %s", self.peer_id, target)
            ended = _StreamEnded()
            call.add_done_callback(lambda _call: self._on_call_done(ended))
            prober = asyncio.get_running_loop().create_task(self._probe(channel), name=f"probe-{self.peer_id:x}")
            try:
                await self._write_batches(call, ended)
            finally:
                prober.cancel()

    async def _write_batches(self, call: Any, ended: _StreamEnded) -> None:
        """Write queued messages in batches until the stream breaks; each written batch is counted once."""
        traffic = self.transport.traffic
        while True:
            first = await self.queue.get()
            if isinstance(first, _StreamEnded):
                if first is ended:
                    raise ConnectionResetError("the peer ended the stream")
                continue  # left over from an earlier stream
            batch = [first]
            size = _approx_size(first)
            while len(batch) < MAX_BATCH_MESSAGES and size < MAX_BATCH_BYTES and not self.queue.empty():
                item = self.queue.get_nowait()
                if isinstance(item, _StreamEnded):
                    continue  # the write below finds out whether this stream still works
                batch.append(item)
                size += _approx_size(item)
            pb = raft_pb2.MessageBatch(messages=[message_to_pb(m) for m in batch])
            try:
                await call.write(pb)
            except BaseException:
                self.transport.report_unreachable(self.peer_id)
                raise  # counted as a send failure where the stream's end is handled
            traffic.add(traffic.sent_bytes, self.peer_id, pb.ByteSize())

    async def _probe(self, channel: grpc.aio.Channel) -> None:
        """Time a Probe call on the stream's own connection now and every PROBE_INTERVAL_S (etcd probes
        each peer on its peer connections); each answered probe is one round-trip sample."""
        stub = raft_pb2_grpc.RaftStub(channel)
        while True:
            started = time.perf_counter()
            try:
                await stub.Probe(raft_pb2.ProbeRequest(), timeout=PROBE_TIMEOUT_S)
            except Exception as err:  # noqa: BLE001 - a failed probe is no sample; the stream notices breaks
                logger.debug("probe of peer %x failed: %r", self.peer_id, err)
            else:
                self.transport.traffic.on_round_trip(self.peer_id, time.perf_counter() - started)
            await asyncio.sleep(PROBE_INTERVAL_S)

    def _on_call_done(self, ended: _StreamEnded) -> None:
        """The stream ended (the peer went away, or we stopped): say so now, not at the next send.

        A follower sends nothing to other followers, so without this it would go on counting a
        vanished peer as connected (etcd's health checks before reconfiguration rely on it).
        """
        if self.active_since is not None:
            logger.info("peer %x became inactive", self.peer_id)
        self.active_since = None
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(ended)

    def _on_stream_error(self, target: str, code: grpc.StatusCode | None, details: str) -> None:
        """A stream that could not be opened or broke: one send failure (etcd counts its failed posts
        and stream writes), then the reason, logged as etcd would."""
        traffic = self.transport.traffic
        traffic.add(traffic.sent_failures, self.peer_id)
        if code == grpc.StatusCode.PERMISSION_DENIED and details == ERR_MEMBER_REMOVED:
            self.transport.removed_by_peer(self.peer_id)
        elif code == grpc.StatusCode.FAILED_PRECONDITION:
            logger.error("peer %x at %s rejected our stream: %s", self.peer_id, target, details)
        else:
            logger.debug("stream to peer %x at %s failed: %s %s", self.peer_id, target, code, details)

    async def _send_snapshot(self, message: Message) -> None:
        failed = True
        traffic = self.transport.traffic
        try:
            snapshot = self.transport.snapshot_to_send(message)
            message = dataclasses.replace(message, snapshot=snapshot)
            async with await self.transport.open_channel(self._target()) as channel:
                stub = raft_pb2_grpc.RaftStub(channel)
                ack = await stub.SendSnapshot(_snapshot_chunks(message),
                                              metadata=self.transport.call_metadata())
            failed = ack.received_bytes != len(snapshot.data)
            if not failed:
                traffic.add(traffic.sent_bytes, self.peer_id, len(snapshot.data))
            logger.info("sent snapshot [index %d, %d bytes] to peer %x", snapshot.metadata.index,
                        len(snapshot.data), self.peer_id)
        except asyncio.CancelledError:
            raise
        except grpc.aio.AioRpcError as err:
            logger.warning("snapshot send to peer %x failed: %s %s", self.peer_id, err.code(), err.details())
            if err.code() == grpc.StatusCode.PERMISSION_DENIED and err.details() == ERR_MEMBER_REMOVED:
                self.transport.removed_by_peer(self.peer_id)
        except Exception:
            logger.exception("snapshot send to peer %x failed", self.peer_id)
        finally:
            if failed:
                traffic.add(traffic.sent_failures, self.peer_id)
            self.transport.report_snapshot(self.peer_id, failed)


async def _snapshot_chunks(message: Message) -> AsyncIterator[raft_pb2.SnapshotChunk]:
    """The SNAP message (metadata only) then its data in ~1 MiB pieces; the last one is `final`."""
    assert message.snapshot is not None
    data = message.snapshot.data
    head = message_to_pb(message, with_snapshot_data=False)
    crc = zlib.crc32(data)
    offset = 0
    first = True
    while True:
        piece = data[offset:offset + SNAPSHOT_CHUNK_BYTES]
        offset += len(piece)
        final = offset >= len(data)
        yield raft_pb2.SnapshotChunk(message=head if first else None, data=piece, final=final,
                                     crc32=crc if final else 0)
        first = False
        if final:
            return


# ------------------------------------------------------------------- receiving


class _RaftServicer(raft_pb2_grpc.RaftServicer):
    """Accepts peers' streams and snapshots after checking the cluster ID and the sender's membership."""

    def __init__(self, transport: GrpcTransport) -> None:
        self.transport = transport

    async def Stream(self, request_iterator: AsyncIterator[raft_pb2.MessageBatch],
                     context: grpc.aio.ServicerContext[Any, Any]) -> raft_pb2.StreamAck:
        sender = await self.transport.check_caller(context)
        await context.send_initial_metadata(((ACCEPTED_KEY, "1"),))
        traffic = self.transport.traffic
        try:
            async for batch in request_iterator:
                if self.transport.is_removed(sender):
                    await context.abort(grpc.StatusCode.PERMISSION_DENIED, ERR_MEMBER_REMOVED)
                traffic.add(traffic.received_bytes, sender, batch.ByteSize())
                for pb in batch.messages:
                    self.transport.deliver(message_from_pb(pb))
        except (grpc.aio.AbortError, asyncio.CancelledError):
            raise
        except Exception:
            traffic.add(traffic.received_failures, sender)  # the stream broke mid-way
            raise
        return raft_pb2.StreamAck()

    async def Probe(self, request: raft_pb2.ProbeRequest,  # noqa: N802 - gRPC method name
                    context: grpc.aio.ServicerContext[Any, Any]) -> raft_pb2.ProbeResponse:
        return raft_pb2.ProbeResponse()

    async def SendSnapshot(self, request_iterator: AsyncIterator[raft_pb2.SnapshotChunk],
                           context: grpc.aio.ServicerContext[Any, Any]) -> raft_pb2.SnapshotAck:
        sender = await self.transport.check_caller(context)
        traffic = self.transport.traffic
        head: raft_pb2.Message | None = None
        pieces: list[bytes] = []
        crc: int | None = None
        async for chunk in request_iterator:
            if head is None:
                if not chunk.HasField("message") or not chunk.message.HasField("snapshot"):
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "snapshot stream lacks its message")
                head = chunk.message
            pieces.append(chunk.data)
            if chunk.final:
                crc = chunk.crc32
                break
        if head is None or crc is None:
            traffic.add(traffic.received_failures, sender)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "snapshot stream ended before its final chunk")
            raise AssertionError("unreachable")
        data = b"".join(pieces)
        if zlib.crc32(data) != crc:
            traffic.add(traffic.received_failures, sender)
            await context.abort(grpc.StatusCode.DATA_LOSS, "snapshot data does not match its checksum")
        traffic.add(traffic.received_bytes, sender, len(data))
        message = message_from_pb(head)
        assert message.snapshot is not None
        self.transport.deliver(dataclasses.replace(message, snapshot=dataclasses.replace(message.snapshot,
                                                                                         data=data)))
        return raft_pb2.SnapshotAck(received_bytes=len(data))


# ------------------------------------------------------------------- transport


class GrpcTransport:
    """Raft's peer transport over gRPC (plain text or TLS); also hosts the server's own peer services."""

    def __init__(self, member_id: int, cluster_id: int, listen_urls: list[str], *,
                 on_message: Callable[[Message], None] | None = None,
                 is_removed: Callable[[int], bool] = lambda peer_id: False,
                 on_removed: Callable[[], None] = lambda: None,
                 dial_timeout: float = DEFAULT_DIAL_TIMEOUT,
                 security: TransportSecurity | None = None,
                 traffic: PeerTraffic | None = None) -> None:
        self.member_id = member_id
        self.cluster_id = cluster_id
        self.listen_urls = list(listen_urls)
        self.on_message = on_message
        self.is_removed = is_removed
        self.on_removed = on_removed
        self.channel_options = channel_options(dial_timeout)
        self.security = security
        self.traffic = traffic if traffic is not None else PeerTraffic()
        """What this transport counts of its work (read by the application's metrics)."""
        self.bound_ports: list[int] = []
        self._handler: RaftHandler | None = None
        self._registrars: list[Callable[[grpc.aio.Server], None]] = []
        self._peers: dict[int, _Peer] = {}
        self._server: grpc.aio.Server | None = None
        self._started = False
        self._told_removed = False
        self._stopping: set[asyncio.Task[None]] = set()

    # -- wiring

    def attach(self, handler: RaftHandler) -> None:
        """Route received messages and send outcomes to `handler` (the node calls this)."""
        self._handler = handler
        self.on_message = handler.receive

    def add_services(self, register: Callable[[grpc.aio.Server], None]) -> None:
        """Register more services on the peer server; call before `start`."""
        if self._started:
            raise RuntimeError("add_services must be called before start")
        self._registrars.append(register)

    async def open_channel(self, url: str) -> grpc.aio.Channel:
        """A channel to a peer URL with this transport's options and TLS settings."""
        return await open_peer_channel(url, self.security, self.channel_options)

    async def start(self) -> None:
        security = self.security
        interceptors = security.server_interceptors() if security is not None else []
        server = grpc.aio.server(options=_SERVER_OPTIONS, interceptors=interceptors or None)
        raft_pb2_grpc.add_RaftServicer_to_server(_RaftServicer(self), server)
        for register in self._registrars:
            register(server)
        for url in self.listen_urls:
            address = url_to_target(url)
            if url_is_secure(url):
                if security is None or not security.listens_securely:
                    raise OSError(f"cannot listen on TLS for {address}: KeyFile and CertFile are not presented")
                port = server.add_secure_port(address, security.server_credentials())
            else:
                port = server.add_insecure_port(address)
            if port == 0:
                raise OSError(f"cannot listen on {url}")
            self.bound_ports.append(port)
        await server.start()
        self._server = server
        self._started = True
        for peer in self._peers.values():
            peer.start()

    async def stop(self) -> None:
        peers = list(self._peers.values())
        self._peers.clear()
        for peer in peers:
            await peer.stop()
        for task in list(self._stopping):
            with contextlib.suppress(Exception):
                await task
        if self._server is not None:
            await self._server.stop(grace=0.2)
            self._server = None
        self._started = False

    # -- peers

    def add_peer(self, peer_id: int, urls: list[str]) -> None:
        if peer_id == self.member_id or peer_id in self._peers:
            return
        peer = _Peer(self, peer_id, urls)
        self._peers[peer_id] = peer
        if self._started:
            peer.start()

    def remove_peer(self, peer_id: int) -> None:
        peer = self._peers.pop(peer_id, None)
        if peer is not None:
            self._stop_later(peer)

    def update_peer(self, peer_id: int, urls: list[str]) -> None:
        """Point the peer at new URLs; its stream reconnects to them."""
        peer = self._peers.get(peer_id)
        if peer is None:
            self.add_peer(peer_id, urls)
            return
        if dialable_urls(peer_id, urls) != peer.targets:
            self.remove_peer(peer_id)
            self.add_peer(peer_id, urls)

    def active_since(self, peer_id: int) -> float | None:
        """The monotonic time the peer's stream became healthy, or None while it is not."""
        peer = self._peers.get(peer_id)
        return None if peer is None else peer.active_since

    def _stop_later(self, peer: _Peer) -> None:
        if not self._started:
            return
        task = asyncio.get_running_loop().create_task(peer.stop())
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    # -- sending

    def send(self, messages: Sequence[Message]) -> None:
        traffic = self.traffic
        for message in messages:
            if message.type == MessageType.HEARTBEAT:
                traffic.heartbeat_sent(message.to)
            peer = self._peers.get(message.to)
            if peer is None or not self._started:
                logger.debug("dropped %s to unknown peer %x", message.type.name, message.to)
                if message.type == MessageType.SNAP:
                    self.report_snapshot(message.to, True)
                continue
            if message.type == MessageType.SNAP:
                peer.send_snapshot(message)
            elif not peer.enqueue(message):
                logger.debug("dropped %s to peer %x: outbound queue full", message.type.name, message.to)
                traffic.add(traffic.sent_failures, message.to)
                self.report_unreachable(message.to)

    def call_metadata(self) -> tuple[tuple[str, str], ...]:
        return ((SENDER_KEY, f"{self.member_id:x}"), (CLUSTER_ID_KEY, f"{self.cluster_id:x}"))

    # -- callbacks into the node

    def deliver(self, message: Message) -> None:
        if message.to != self.member_id:
            logger.debug("dropped %s addressed to %x, not us", message.type.name, message.to)
            return
        if self.on_message is not None:
            self.on_message(message)

    def report_unreachable(self, peer_id: int) -> None:
        if self._handler is not None:
            self._handler.report_unreachable(peer_id)

    def report_snapshot(self, peer_id: int, failed: bool) -> None:
        if self._handler is not None:
            self._handler.report_snapshot(peer_id, failed)

    def snapshot_to_send(self, message: Message) -> Snapshot:
        if self._handler is not None:
            return self._handler.snapshot_to_send(message)
        assert message.snapshot is not None
        return message.snapshot

    def removed_by_peer(self, peer_id: int) -> None:
        if not self._told_removed:
            self._told_removed = True
            logger.warning("peer %x says this member was removed from the cluster", peer_id)
            self.on_removed()

    async def check_caller(self, context: grpc.aio.ServicerContext[Any, Any]) -> int:
        """The sender's member ID, after rejecting other clusters and removed members (as etcd does)."""
        metadata = dict(context.invocation_metadata() or ())
        try:
            sender = int(str(metadata[SENDER_KEY]), 16)
            cluster_id = int(str(metadata[CLUSTER_ID_KEY]), 16)
        except (KeyError, ValueError):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "missing or malformed sender metadata")
            raise AssertionError("unreachable") from None
        if cluster_id != self.cluster_id:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"{ERR_CLUSTER_ID_MISMATCH} (local={self.cluster_id:x}, remote={cluster_id:x})")
        if self.is_removed(sender):
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, ERR_MEMBER_REMOVED)
        return sender
