"""Peer transport: messages and chunked snapshots cross gRPC; strangers and removed members are refused;
bytes, failures, probe round trips and late heartbeats are counted for the metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import grpc
import pytest

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
from raft.transport import (
    OUTBOUND_QUEUE_SIZE,
    SNAPSHOT_CHUNK_BYTES,
    GrpcTransport,
    message_from_pb,
    message_to_pb,
)

CLUSTER_ID = 0xC1


@dataclass
class Recorder:
    """Stands in for a RaftNode: records what the transport calls back with."""

    received: list[Message] = field(default_factory=list)
    unreachable: list[int] = field(default_factory=list)
    snapshot_reports: list[tuple[int, bool]] = field(default_factory=list)
    app_snapshot: Snapshot | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def receive(self, message: Message) -> None:
        self.received.append(message)
        self.arrived.set()

    def report_unreachable(self, peer_id: int) -> None:
        self.unreachable.append(peer_id)

    def report_snapshot(self, peer_id: int, failed: bool) -> None:
        self.snapshot_reports.append((peer_id, failed))
        self.arrived.set()

    def snapshot_to_send(self, message: Message) -> Snapshot:
        assert self.app_snapshot is not None
        return self.app_snapshot

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        async def poll() -> None:
            while not predicate():
                self.arrived.clear()
                await self.arrived.wait()
        await asyncio.wait_for(poll(), timeout)


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Until `predicate` holds, looking every few milliseconds (for counts no callback announces)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


@dataclass
class Member:
    transport: GrpcTransport
    recorder: Recorder

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.transport.bound_ports[0]}"


MakeMember = Callable[..., Awaitable[Member]]


@pytest.fixture
async def make_member() -> AsyncIterator[MakeMember]:
    started: list[GrpcTransport] = []

    async def make(member_id: int, cluster_id: int = CLUSTER_ID, port: int = 0,
                   is_removed: Callable[[int], bool] = lambda peer_id: False,
                   on_removed: Callable[[], None] = lambda: None) -> Member:
        transport = GrpcTransport(member_id, cluster_id, [f"http://127.0.0.1:{port}"],
                                  is_removed=is_removed, on_removed=on_removed)
        recorder = Recorder()
        transport.attach(recorder)
        await transport.start()
        started.append(transport)
        return Member(transport, recorder)

    try:
        yield make
    finally:
        for transport in started:
            await transport.stop()


def app(to: int, sender: int, index: int) -> Message:
    return Message(type=MessageType.APP, to=to, sender=sender, term=2, log_term=1, index=index, commit=index,
                   entries=(Entry(term=2, index=index + 1, data=b"put k v"),))


def test_message_survives_the_wire_format() -> None:
    conf_state = ConfState(voters=(1, 2), learners=(3,))
    message = Message(
        type=MessageType.SNAP, to=2, sender=1, term=3, log_term=2, index=9, commit=8, reject=True,
        reject_hint=7, context=b"ctx",
        entries=(Entry(term=3, index=10, type=EntryType.CONF_CHANGE, data=b"cc"),),
        snapshot=Snapshot(SnapshotMetadata(index=9, term=2, conf_state=conf_state), b"state"),
    )
    assert message_from_pb(message_to_pb(message)) == message
    plain = Message(type=MessageType.HEARTBEAT, to=2, sender=1, term=3)
    assert message_from_pb(message_to_pb(plain)) == plain


async def test_messages_reach_the_peer_in_order(make_member: MakeMember) -> None:
    one, two = await make_member(1), await make_member(2)
    round_trips: list[tuple[int, float]] = []
    one.transport.traffic.on_round_trip = lambda peer, seconds: round_trips.append((peer, seconds))
    one.transport.add_peer(2, [two.url])
    two.transport.add_peer(1, [one.url])
    sent = [app(2, 1, i) for i in range(1, 301)]
    one.transport.send(sent[:1])
    await two.recorder.wait_for(lambda: len(two.recorder.received) >= 1)
    one.transport.send(sent[1:])
    await two.recorder.wait_for(lambda: len(two.recorder.received) == len(sent))
    assert two.recorder.received == sent
    assert one.transport.active_since(2) is not None
    # Each side counts the batches' encoded size once: what one wrote is what two read.
    await eventually(lambda: one.transport.traffic.sent_bytes.get(2) == two.transport.traffic.received_bytes[1])
    assert one.transport.traffic.sent_bytes[2] > 300 * 10
    assert one.transport.traffic.sent_failures == {} and two.transport.traffic.received_failures == {}
    # The stream's connection is probed as soon as it is up.
    await eventually(lambda: bool(round_trips))
    assert round_trips[0][0] == 2 and 0 < round_trips[0][1] < 5
    two.transport.send([Message(type=MessageType.APP_RESP, to=1, sender=2, term=2, index=300)])
    await one.recorder.wait_for(lambda: len(one.recorder.received) == 1)
    assert one.recorder.received[0].index == 300


async def test_snapshot_goes_in_chunks_with_the_applications_state(
        make_member: MakeMember) -> None:
    one, two = await make_member(1), await make_member(2)
    one.transport.add_peer(2, [two.url])
    data = bytes(range(256)) * (SNAPSHOT_CHUNK_BYTES * 3 // 256 + 7)  # a bit over three chunks
    meta = SnapshotMetadata(index=50, term=2, conf_state=ConfState(voters=(1, 2)))
    one.recorder.app_snapshot = Snapshot(meta, data)
    # The core's message carries the log store's metadata-only snapshot at an older index.
    core_snapshot = Snapshot(SnapshotMetadata(index=40, term=2, conf_state=ConfState(voters=(1, 2))))
    one.transport.send([Message(type=MessageType.SNAP, to=2, sender=1, term=2, snapshot=core_snapshot)])
    await two.recorder.wait_for(lambda: len(two.recorder.received) == 1)
    await one.recorder.wait_for(lambda: len(one.recorder.snapshot_reports) == 1)
    received = two.recorder.received[0]
    assert received.type == MessageType.SNAP
    assert received.snapshot == Snapshot(meta, data)
    assert one.recorder.snapshot_reports == [(2, False)]
    assert one.transport.traffic.sent_bytes == {2: len(data)}
    assert two.transport.traffic.received_bytes == {1: len(data)}


async def test_snapshot_to_an_unreachable_peer_is_reported_failed(
        make_member: MakeMember) -> None:
    one, two = await make_member(1), await make_member(2)
    url = two.url
    await two.transport.stop()
    one.transport.add_peer(2, [url])
    one.recorder.app_snapshot = Snapshot(SnapshotMetadata(index=5, term=1), b"x")
    one.transport.send([Message(type=MessageType.SNAP, to=2, sender=1, term=1,
                                snapshot=Snapshot(SnapshotMetadata(index=5, term=1)))])
    await one.recorder.wait_for(lambda: len(one.recorder.snapshot_reports) == 1)
    assert one.recorder.snapshot_reports == [(2, True)]
    assert one.transport.traffic.sent_failures.get(2, 0) >= 1


async def test_stream_reconnects_to_a_restarted_peer(make_member: MakeMember) -> None:
    one, two = await make_member(1), await make_member(2)
    port = two.transport.bound_ports[0]
    one.transport.add_peer(2, [two.url])
    one.transport.send([app(2, 1, 1)])
    await two.recorder.wait_for(lambda: len(two.recorder.received) == 1)
    await two.transport.stop()
    restarted = await make_member(2, port=port)

    async def keep_sending() -> None:
        index = 2
        while not restarted.recorder.received:
            one.transport.send([app(2, 1, index)])
            index += 1
            await asyncio.sleep(0.05)

    await asyncio.wait_for(keep_sending(), 10)
    assert restarted.recorder.received[0].type == MessageType.APP
    assert one.transport.active_since(2) is not None


async def test_quiet_stream_notices_a_vanished_peer_and_reconnects_without_sending(
        make_member: MakeMember) -> None:
    # A follower sends nothing to another follower, yet must know whether it is connected
    # (etcd refuses reconfiguration unless every peer has been connected for a while).
    one, two = await make_member(1), await make_member(2)
    port = two.transport.bound_ports[0]
    one.transport.add_peer(2, [two.url])

    async def until(condition: Callable[[], bool]) -> None:
        while not condition():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(until(lambda: one.transport.active_since(2) is not None), 10)
    await two.transport.stop()
    await asyncio.wait_for(until(lambda: one.transport.active_since(2) is None), 10)
    await make_member(2, port=port)
    await asyncio.wait_for(until(lambda: one.transport.active_since(2) is not None), 10)


async def test_other_cluster_is_rejected(make_member: MakeMember) -> None:
    one, stranger = await make_member(1), await make_member(2, cluster_id=0xBAD)
    stranger.transport.add_peer(1, [one.url])
    stranger.transport.send([app(1, 2, 1)])
    await asyncio.sleep(0.5)
    assert one.recorder.received == []
    assert stranger.transport.active_since(1) is None


async def test_removed_member_is_told_so(make_member: MakeMember) -> None:
    told = asyncio.Event()
    one = await make_member(1, is_removed=lambda peer_id: peer_id == 3)
    removed = await make_member(3, on_removed=told.set)
    removed.transport.add_peer(1, [one.url])
    removed.transport.send([Message(type=MessageType.HEARTBEAT_RESP, to=1, sender=3, term=1)])
    await asyncio.wait_for(told.wait(), 10)
    assert one.recorder.received == []


async def test_full_queue_drops_and_reports_unreachable(make_member: MakeMember) -> None:
    one = await make_member(1)
    one.transport.add_peer(2, ["http://127.0.0.1:1"])  # nobody listens there
    one.transport.send([app(2, 1, i) for i in range(OUTBOUND_QUEUE_SIZE + 10)])
    assert one.recorder.unreachable.count(2) >= 10
    assert one.transport.active_since(2) is None
    assert one.transport.traffic.sent_failures[2] >= 10


async def test_a_snapshot_that_fails_its_checksum_is_a_receive_failure(make_member: MakeMember) -> None:
    one, two = await make_member(1), await make_member(2)
    head = raft_pb2.Message(type=raft_pb2.MSG_SNAP, to=2, sender=1, term=1,
                            snapshot=raft_pb2.Snapshot(metadata=raft_pb2.SnapshotMetadata(index=5, term=1)))

    async def chunks() -> AsyncIterator[raft_pb2.SnapshotChunk]:
        yield raft_pb2.SnapshotChunk(message=head, data=b"state", final=True, crc32=1)

    async with await one.transport.open_channel(two.url) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await raft_pb2_grpc.RaftStub(channel).SendSnapshot(chunks(), metadata=one.transport.call_metadata())
    assert refused.value.code() == grpc.StatusCode.DATA_LOSS
    assert two.transport.traffic.received_failures == {1: 1}
    assert two.recorder.received == []


def test_a_heartbeat_later_than_two_intervals_is_reported_until_leadership_changes() -> None:
    late: list[tuple[int, float]] = []
    traffic = PeerTraffic(on_late_heartbeat=lambda peer, exceeded: late.append((peer, exceeded)),
                          heartbeat_interval_s=0.1)
    for now in (10.0, 10.1, 10.25, 10.55):  # 0.1 and 0.15 apart are on time; 0.3 is 0.1 late
        traffic.heartbeat_sent(2, now)
    traffic.heartbeat_sent(3, 10.55)
    assert [(peer, round(exceeded, 3)) for peer, exceeded in late] == [(2, 0.1)]
    traffic.reset_heartbeats()
    traffic.heartbeat_sent(2, 20.0)
    assert len(late) == 1


async def test_a_peer_url_the_transport_cannot_dial_leaves_that_peer_unreachable(make_member: MakeMember) -> None:
    # Committed membership entries may carry URLs nobody answers on; refusing them would stop the member.
    one, two = await make_member(1), await make_member(2)
    one.transport.add_peer(3, ["unix://sock:0"])
    one.transport.add_peer(2, ["https://127.0.0.1:1", two.url])
    one.transport.send([app(3, 1, 1), app(2, 1, 1)])
    await two.recorder.wait_for(lambda: len(two.recorder.received) == 1)
    assert one.transport.active_since(3) is None
    one.transport.update_peer(3, ["unix://other:0"])
    assert one.transport.active_since(3) is None
