"""How many proposals per second the Raft core commits, alone and behind the real driver.

1. core: three RawNodes over MemoryStorage in one process, messages handed over directly
   (the cost of the Raft rules themselves);
2. grpc: three RaftNodes with the durable log and the gRPC transport on loopback (uvloop),
   with a window of proposals in flight, reporting fsyncs/s and entries per save (group commit).

Prints a markdown table. `--quick` keeps the whole run under a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from raft.core import (
    ConfChange,
    ConfChangeType,
    Config,
    EntryType,
    MemoryStorage,
    Message,
    ProposalDropped,
    RawNode,
    StateRole,
    decode_conf_change,
)
from raft.node import NodeConfig, RaftNode
from raft.transport import GrpcTransport
from storage.raftlog import DurableLog

MEMBERS = [1, 2, 3]
PAYLOAD = b"x" * 128


@dataclass
class Row:
    setup: str
    proposals: int
    seconds: float
    fsyncs: int | None = None
    mean_batch: float | None = None

    def cells(self) -> list[str]:
        rate = self.proposals / self.seconds
        fsyncs = "-" if self.fsyncs is None else f"{self.fsyncs / self.seconds:,.0f}"
        batch = "-" if self.mean_batch is None else f"{self.mean_batch:.1f}"
        return [self.setup, f"{self.proposals:,}", f"{self.seconds:.2f}", f"{rate:,.0f}", fsyncs, batch]


# ------------------------------------------------------------------ core only


class CoreCluster:
    """Three cores wired back to back: every Ready is stored, its messages delivered at once."""

    def __init__(self) -> None:
        self.storages = {i: MemoryStorage() for i in MEMBERS}
        self.nodes = {i: RawNode(Config(id=i, random_seed=i), self.storages[i]) for i in MEMBERS}
        peers = [ConfChange(ConfChangeType.ADD_NODE, i) for i in MEMBERS]
        for node in self.nodes.values():
            node.bootstrap(peers)
        self.applied = dict.fromkeys(MEMBERS, 0)
        self.readies = 0

    def pump(self) -> None:
        """Run Ready rounds until no member has anything left to do."""
        busy = True
        while busy:
            busy = False
            outbox: list[Message] = []
            for member_id, node in self.nodes.items():
                if not node.has_ready():
                    continue
                busy = True
                rd = node.ready()
                self.readies += 1
                self.storages[member_id].save(rd.hard_state, list(rd.entries), rd.snapshot)
                outbox.extend(rd.messages + rd.messages_after_append)
                for entry in rd.committed_entries:
                    if entry.type == EntryType.CONF_CHANGE:
                        node.apply_conf_change(decode_conf_change(entry.data))
                    self.applied[member_id] = entry.index
                node.advance(rd)
            for message in outbox:
                self.nodes[message.to].step(message)

    def elect(self, member_id: int) -> RawNode:
        self.pump()  # apply the bootstrap conf changes first: a member with unapplied ones does not campaign
        self.nodes[member_id].campaign()
        self.pump()
        leader = self.nodes[member_id]
        assert leader.role == StateRole.LEADER
        return leader


def bench_core(proposals: int, batch: int) -> Row:
    cluster = CoreCluster()
    leader = cluster.elect(1)
    target = cluster.applied[1] + proposals
    started = time.perf_counter()
    proposed = 0
    while proposed < proposals:
        for _ in range(min(batch, proposals - proposed)):
            leader.propose(PAYLOAD)
            proposed += 1
        cluster.pump()
    elapsed = time.perf_counter() - started
    assert min(cluster.applied.values()) >= target
    return Row(f"core, MemoryStorage, {batch} per round", proposals, elapsed)


# ------------------------------------------------------------- through gRPC


@dataclass
class GrpcMember:
    node: RaftNode
    transport: GrpcTransport
    log: DurableLog
    applied: int = 0


async def bench_grpc(proposals: int, window: int, root: Path) -> Row:
    members: dict[int, GrpcMember] = {}
    appliers: list[asyncio.Task[None]] = []
    progress = asyncio.Event()
    try:
        for member_id in MEMBERS:
            transport = GrpcTransport(member_id, 0xB, ["http://127.0.0.1:0"])
            await transport.start()
            log = DurableLog.open(root / f"w{window}-m{member_id}")
            node = RaftNode(NodeConfig(member_id=member_id), log, transport)
            members[member_id] = GrpcMember(node, transport, log)
        for member in members.values():
            for other_id, other in members.items():
                member.transport.add_peer(other_id, [f"http://127.0.0.1:{other.transport.bound_ports[0]}"])
        peers = [ConfChange(ConfChangeType.ADD_NODE, i) for i in MEMBERS]
        for member in members.values():
            await member.node.start(peers)
            appliers.append(asyncio.create_task(_apply(member, progress.set)))
        # Campaign once the bootstrap conf changes are applied (a member with unapplied ones does not).
        await _until(lambda: members[1].applied >= len(MEMBERS), progress)
        await members[1].node.campaign()
        await _until(lambda: any(m.node.is_leader for m in members.values()), progress)
        leader = next(m for m in members.values() if m.node.is_leader)

        fsyncs_before = sum(m.log.fsync_count for m in members.values())
        saves_before, entries_before = leader.node.saves, leader.node.saved_entries
        start_index = leader.applied
        started = time.perf_counter()
        proposed = 0
        while proposed < proposals:
            in_flight = start_index + proposed - leader.applied
            room = min(window - in_flight, proposals - proposed)
            for _ in range(room):
                with contextlib.suppress(ProposalDropped):
                    leader.node.propose(PAYLOAD)
                    proposed += 1
            progress.clear()
            await progress.wait()
        await _until(lambda: all(m.applied >= start_index + proposals for m in members.values()), progress)
        elapsed = time.perf_counter() - started
        fsyncs = sum(m.log.fsync_count for m in members.values()) - fsyncs_before
        saves = leader.node.saves - saves_before
        mean_batch = (leader.node.saved_entries - entries_before) / max(saves, 1)
        return Row(f"gRPC + durable log, window {window}", proposals, elapsed, fsyncs, mean_batch)
    finally:
        for task in appliers:
            task.cancel()
        for member in members.values():
            await member.node.stop()
            await member.transport.stop()
            member.log.close()


async def _apply(member: GrpcMember, notify: Callable[[], None]) -> None:
    while True:
        batch = await member.node.apply_queue.get()
        for entry in batch.entries:
            if entry.type == EntryType.CONF_CHANGE:
                member.node.apply_conf_change(decode_conf_change(entry.data))
            member.applied = entry.index
        member.node.apply_queue.task_done()
        notify()


async def _until(predicate: Callable[[], bool], progress: asyncio.Event, timeout: float = 60.0) -> None:
    async def poll() -> None:
        while not predicate():
            progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(progress.wait(), 0.1)
    await asyncio.wait_for(poll(), timeout)


# ---------------------------------------------------------------------- main


async def run_grpc(proposals: int, windows: list[int]) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="raft-bench-") as tmp:
        return [await bench_grpc(proposals if w > 1 else proposals // 10, w, Path(tmp)) for w in windows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts; finishes in under a minute")
    args = parser.parse_args()
    core_n, grpc_n = (20_000, 10_000) if args.quick else (100_000, 50_000)

    rows = [bench_core(core_n, 1), bench_core(core_n, 100)]
    try:
        import uvloop
        runner: Callable[..., list[Row]] = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency, but keep the bench runnable
        runner = asyncio.run
    rows += runner(run_grpc(grpc_n, [1, 64, 512]))

    header = ["setup", "proposals", "seconds", "proposals/s", "fsyncs/s (all members)",
              "entries per save (leader)"]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row.cells()) + " |")


if __name__ == "__main__":
    main()
