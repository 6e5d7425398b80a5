"""The driver keeps the core's contract: a conf change is applied before the core advances past it.

Three RaftNodes over MemoryStorage and the in-memory transport, each with an application
whose applying can be held back, so a committed conf change sits unapplied while later
Readies are due. The core must not treat it as applied: it would accept a second change
before the first took effect, or let a member campaign with a membership it has not
switched to (thesis §4.1).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from raft.core import (
    ConfChange,
    ConfChangeType,
    ConfState,
    EntryType,
    MemoryStorage,
    ProposalDropped,
    StateRole,
    decode_conf_change,
)
from raft.memory_transport import MemoryNetwork
from raft.node import NodeConfig, RaftNode

WAIT = 20.0  # generous: the machine is shared; nothing asserts on timings


@dataclass
class HeldApplier:
    """Applies batches in order, but only while `gate` is open."""

    node: RaftNode
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    applied_index: int = 0
    conf_state: ConfState = field(default_factory=ConfState)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        while True:
            batch = await self.node.apply_queue.get()
            await self.gate.wait()
            for entry in batch.entries:
                if entry.type is EntryType.CONF_CHANGE:
                    self.conf_state = self.node.apply_conf_change(decode_conf_change(entry.data))
                self.applied_index = entry.index
            self.node.apply_queue.task_done()
            self.changed.set()


@dataclass
class Members:
    nodes: dict[int, RaftNode]
    appliers: dict[int, HeldApplier]

    def leader(self) -> int | None:
        leaders = [i for i, n in self.nodes.items() if n.is_leader]
        return leaders[0] if leaders else None


async def until(predicate: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.005)
    await asyncio.wait_for(poll(), WAIT)


@pytest.fixture
async def members() -> AsyncIterator[Members]:
    network = MemoryNetwork()
    ids = [1, 2, 3]
    nodes = {i: RaftNode(NodeConfig(member_id=i, heartbeat_ms=10, election_ms=500), MemoryStorage(),
                         network.transport(i)) for i in ids}
    appliers = {i: HeldApplier(node) for i, node in nodes.items()}
    tasks = [asyncio.create_task(a.run()) for a in appliers.values()]
    for applier in appliers.values():
        applier.gate.set()
    try:
        for node in nodes.values():
            await node.start([ConfChange(ConfChangeType.ADD_NODE, i) for i in ids])
        result = Members(nodes, appliers)
        await until(lambda: result.leader() is not None)
        yield result
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for node in nodes.values():
            await node.stop()


async def test_a_committed_conf_change_is_not_applied_in_the_core_until_the_application_applies_it(
        members: Members) -> None:
    leader_id = members.leader()
    assert leader_id is not None
    leader, follower_id = members.nodes[leader_id], next(i for i in members.nodes if i != leader_id)
    follower = members.nodes[follower_id]
    await until(lambda: all(a.applied_index >= 3 for a in members.appliers.values()))  # bootstrap applied
    for applier in members.appliers.values():
        applier.gate.clear()

    leader.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER_NODE, 4))
    conf_index = leader.status().last_index
    await until(lambda: leader.commit_index >= conf_index and follower.status().commit >= conf_index)
    for _ in range(10):  # heartbeats and later Readies come and go while the change waits
        leader.propose(b"later")
        await asyncio.sleep(0.005)

    # The core still counts the change as unapplied everywhere, so it refuses a second one
    # (one change at a time, thesis §4.1) and a follower will not campaign on the old membership.
    assert leader.status().applied < conf_index
    assert follower.status().applied < conf_index
    assert leader.status().conf_state.learners == ()
    with pytest.raises(ProposalDropped):
        leader.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER_NODE, 5))
    await follower.campaign()
    assert follower.status().role is StateRole.FOLLOWER

    for applier in members.appliers.values():
        applier.gate.set()
    await until(lambda: all(n.status().applied >= conf_index for n in members.nodes.values()))
    assert leader.status().conf_state.learners == (4,)
    assert members.appliers[leader_id].conf_state.learners == (4,)
    await until(lambda: leader.status().applied >= leader.status().commit)
    leader.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER_NODE, 5))  # now accepted


async def test_readies_without_conf_changes_do_not_wait_for_the_application(members: Members) -> None:
    leader_id = members.leader()
    assert leader_id is not None
    leader = members.nodes[leader_id]
    await until(lambda: all(a.applied_index >= 3 for a in members.appliers.values()))
    for applier in members.appliers.values():
        applier.gate.clear()
    start = leader.commit_index
    for i in range(30):
        leader.propose(f"w{i}".encode())
        await asyncio.sleep(0.002)
    # Replication and commit go on while every application is held back.
    await until(lambda: leader.commit_index >= start + 30)
    assert all(a.applied_index <= start for a in members.appliers.values())
    for applier in members.appliers.values():
        applier.gate.set()
    await until(lambda: all(a.applied_index >= start + 30 for a in members.appliers.values()))
