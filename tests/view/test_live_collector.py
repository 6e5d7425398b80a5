"""A member's Raft view collector: idle with no page open, and it sees an election as it happens."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from raft.core import ConfChange, ConfChangeType, MemoryStorage
from raft.memory_transport import MemoryNetwork
from raft.node import NodeConfig, RaftNode
from raft.view.live import FeedEvent, RaftViewCollector

WAIT = 20.0


async def until(predicate: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.005)
    await asyncio.wait_for(poll(), WAIT)


async def applier(node: RaftNode) -> None:
    while True:
        await node.apply_queue.get()
        node.apply_queue.task_done()


@pytest.fixture
async def nodes() -> AsyncIterator[dict[int, RaftNode]]:
    network = MemoryNetwork()
    ids = [1, 2, 3]
    nodes = {i: RaftNode(NodeConfig(member_id=i, heartbeat_ms=10, election_ms=300), MemoryStorage(),
                         network.transport(i)) for i in ids}
    tasks = [asyncio.create_task(applier(n)) for n in nodes.values()]
    try:
        for node in nodes.values():
            await node.start([ConfChange(ConfChangeType.ADD_NODE, i) for i in ids])
        await until(lambda: any(n.is_leader for n in nodes.values()))
        yield nodes
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for node in nodes.values():
            await node.stop()


async def test_with_no_page_open_the_collector_has_no_task_and_no_hook(nodes: dict[int, RaftNode]) -> None:
    node = nodes[1]
    collector = RaftViewCollector(node, interval=0.02)
    assert node.message_observer is None and not collector.watching
    async with collector.subscribe() as queue:
        assert node.message_observer is not None and collector.watching
        first = await asyncio.wait_for(queue.get(), WAIT)
        assert first.name == "state" and first.data["member"]["id"] == 1
    assert node.message_observer is None and not collector.watching
    assert collector._task is None


async def test_a_follower_collector_sees_the_leader_fall_and_a_new_one_elected(
        nodes: dict[int, RaftNode]) -> None:
    old = next(i for i, n in nodes.items() if n.is_leader)
    watched_id = next(i for i in nodes if i != old)
    watched = nodes[watched_id]
    collector = RaftViewCollector(watched, interval=0.02)
    leader_collector = RaftViewCollector(nodes[old], interval=0.02)
    events: list[FeedEvent] = []
    async with leader_collector.subscribe() as leader_feed:
        leader_state = await asyncio.wait_for(leader_feed.get(), WAIT)
        progress = leader_state.data["member"]["progress"]
        assert leader_state.data["member"]["role"] == "leader" and set(progress) == {"1", "2", "3"}
        assert {p["state"] for i, p in progress.items() if int(i) != old} <= {"probe", "replicate"}
    async with collector.subscribe() as queue:
        async def collect() -> None:
            while True:
                events.append(await queue.get())

        reader = asyncio.create_task(collect())
        try:
            await until(lambda: any(e.name == "state" for e in events))
            await nodes[old].stop()
            await until(lambda: any(n.is_leader for i, n in nodes.items() if i != old))
            new = next(i for i, n in nodes.items() if i != old and n.is_leader)
            await until(lambda: any(e.name == "state" and e.data["member"]["leader"] == new for e in events))
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
    timeline = [e.data["text"] for e in events if e.name == "timeline"]
    assert f"{watched_id:x} sees {new:x} as leader of term {watched.term}" in timeline
    # The election shows in what this member sent: its campaign or its vote.
    assert any("campaigns in term" in t or f"votes for {new:x}" in t for t in timeline), timeline
    states = [e.data for e in events if e.name == "state"]
    # Message rates: the watched member sent to its peers (votes, acks, or heartbeats if it won).
    assert any(link["sent"] > 0 and link["rate"] > 0 and link["to"] != watched_id
               for s in states for link in s["links"])
