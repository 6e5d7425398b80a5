"""The nemesis: one fault at a time, held for a few seconds, then healed, then quiet.

Faults: kill -9 and restart (the leader half of the time), SIGSTOP/SIGCONT for longer
than an election timeout, network partitions through the peer proxy (a random
majority/minority split, an isolated leader, and one-way cuts: a leader that cannot
send, or cannot hear; each either blackholes or resets the connections), and a
membership change: a member is removed, its data set aside, and it is added back as a
new member that catches up from the others. They come in shuffled rounds, every kind
once per round, so even a short run meets each.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import grpc

from etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.chaos.clients import StatusPoller
from tests.chaos.cluster import ChaosCluster, wait_member_serving
from tests.chaos.history import FaultRecord, History
from tests.chaos.proxy import BLACKHOLE, RESET

KILL = "kill"
PAUSE = "pause"
PARTITION_HALVES = "partition-halves"
PARTITION_LEADER = "partition-leader"
ONE_WAY_LEADER_MUTE = "one-way-leader-mute"
ONE_WAY_LEADER_DEAF = "one-way-leader-deaf"
MEMBER_REPLACE = "member-replace"
FAULTS = (KILL, PAUSE, PARTITION_HALVES, PARTITION_LEADER, ONE_WAY_LEADER_MUTE, ONE_WAY_LEADER_DEAF,
          MEMBER_REPLACE)
T = TypeVar("T")
MEMBERSHIP_RETRY_SECONDS = 30.0
"""etcd refuses a reconfiguration until every voter has been connected for a while: retry that long."""


@dataclass(frozen=True, slots=True)
class NemesisConfig:
    faults: Sequence[str] = FAULTS
    fault_seconds: tuple[float, float] = (3.0, 8.0)
    quiet_seconds: tuple[float, float] = (2.0, 5.0)
    election_seconds: float = 1.0
    """The members' election timeout (the harness sets it): pauses last two to four of them."""


def both_ways(group: Sequence[int], rest: Sequence[int]) -> list[tuple[int, int]]:
    return [(a, b) for a in group for b in rest] + [(b, a) for a in group for b in rest]


class Nemesis:
    """Applies faults from a seeded random schedule and records each one in the history."""

    def __init__(self, cluster: ChaosCluster, history: History, poller: StatusPoller, rng: random.Random,
                 config: NemesisConfig) -> None:
        unknown = set(config.faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults: {sorted(unknown)}; known: {', '.join(FAULTS)}")
        self.cluster = cluster
        self.history = history
        self.poller = poller
        self.rng = rng
        self.config = config
        self._round: list[str] = []

    async def run(self, stop: asyncio.Event) -> None:
        if not self.config.faults:
            await stop.wait()
            return
        try:
            while not stop.is_set():
                if await self._sleep(stop, self.rng.uniform(*self.config.quiet_seconds)):
                    return
                await self.one_fault(stop)
        finally:
            self.heal()

    async def _sleep(self, stop: asyncio.Event, seconds: float) -> bool:
        """Sleep, or return True at once when told to stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
        return stop.is_set()

    async def _target(self) -> int:
        """The leader half of the time (if one is known), else any member."""
        if self.rng.random() < 0.5:
            leader = await self.poller.leader()
            if leader is not None:
                return leader
        return self.rng.randrange(len(self.cluster.members))

    async def one_fault(self, stop: asyncio.Event) -> None:
        if not self._round:
            self._round = list(self.config.faults)
            self.rng.shuffle(self._round)
        kind = self._round.pop()
        start = self.history.now()
        hold = self.rng.uniform(*self.config.fault_seconds)
        if kind == KILL:
            target = await self._target()
            self.cluster.kill(target)
            detail = f"kill -9 m{target}, restart after {hold:.1f}s"
        elif kind == PAUSE:
            target = await self._target()
            hold = self.rng.uniform(2, 4) * self.config.election_seconds
            self.cluster.pause(target)
            detail = f"SIGSTOP m{target} for {hold:.1f}s"
        elif kind == MEMBER_REPLACE:
            target = await self._target()
            detail = await self.replace_member(target)
            hold = 0.0
        else:
            detail = await self.partition(kind, self.rng.choice([BLACKHOLE, RESET]))
        await self._sleep(stop, hold)
        self.heal()
        self.history.faults.append(FaultRecord(start, self.history.now(), kind, detail))

    async def partition(self, kind: str, mode: str) -> str:
        """Cut links through the proxy as `kind` says; returns what was cut."""
        members = list(range(len(self.cluster.members)))
        if kind == PARTITION_HALVES:
            self.rng.shuffle(members)
            minority, majority = sorted(members[:len(members) // 2]), sorted(members[len(members) // 2:])
            self.cluster.proxy.cut(both_ways(minority, majority), mode)
            return f"partition {minority} | {majority} ({mode})"
        leader = await self.poller.leader()
        target = leader if leader is not None else self.rng.randrange(len(members))
        others = [m for m in members if m != target]
        if kind == PARTITION_LEADER:
            self.cluster.proxy.cut(both_ways([target], others), mode)
            return f"isolate leader m{target} ({mode})"
        if kind == ONE_WAY_LEADER_MUTE:
            self.cluster.proxy.cut([(target, o) for o in others], mode)
            return f"m{target} (leader) cannot send to {others} ({mode})"
        self.cluster.proxy.cut([(o, target) for o in others], mode)
        return f"m{target} (leader) cannot hear {others} ({mode})"

    async def replace_member(self, index: int) -> str:
        """MemberRemove through another member, set the data aside, MemberAdd with the same peer
        URL, start it empty with --initial-cluster-state=existing, and wait until it serves."""
        member = self.cluster.members[index]
        others = [m.index for m in self.cluster.members if m.index != index]
        old_id = member.member_id
        error = await self._remove(others, old_id)
        if error:
            return f"remove m{index} ({old_id:x}) failed: {error}"
        self.cluster.retire(index)
        added = await self._add(others, member.advertised_peer_url)
        if isinstance(added, str):
            return f"removed m{index} ({old_id:x}), but adding it back failed: {added}"
        self.cluster.spawn(member)
        deadline = asyncio.get_running_loop().time() + MEMBERSHIP_RETRY_SECONDS
        try:
            await wait_member_serving(self.cluster, member, self.poller.channels[index], deadline)
        except (TimeoutError, RuntimeError) as err:
            return f"m{index} re-added as {added:x} but not serving: {str(err)[:300]}"
        return f"m{index} ({old_id:x}) removed, added back empty as new member {added:x}"

    async def _retrying(self, via: Sequence[int], attempt: Callable[[rpc_pb2_grpc.ClusterStub], Awaitable[T]],
                        done_already: str) -> T | str:
        """Try a reconfiguration through each of `via` until one accepts it. An error containing
        `done_already` means an earlier try that timed out did take effect. Returns the answer,
        or the last error."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + MEMBERSHIP_RETRY_SECONDS
        error = ""
        while loop.time() < deadline:
            for index in via:
                try:
                    return await attempt(rpc_pb2_grpc.ClusterStub(self.poller.channels[index]))
                except grpc.aio.AioRpcError as err:
                    error = f"{err.code().name}: {err.details()}"
                    if done_already in error:
                        return done_already
            await asyncio.sleep(1.0)
        return error

    async def _remove(self, via: Sequence[int], member_id: int) -> str:
        """The empty string once the member is out of the cluster, else the error."""
        answer = await self._retrying(
            via, lambda stub: stub.MemberRemove(rpc_pb2.MemberRemoveRequest(ID=member_id), timeout=10),
            "member not found")
        return answer if isinstance(answer, str) and answer != "member not found" else ""

    async def _add(self, via: Sequence[int], peer_url: str) -> int | str:
        """The new member's ID, or the error."""
        answer = await self._retrying(
            via, lambda stub: stub.MemberAdd(rpc_pb2.MemberAddRequest(peerURLs=[peer_url]), timeout=10),
            "already exists")
        if not isinstance(answer, str):
            return int(answer.member.ID)
        if answer != "already exists":
            return answer
        listing = await self._retrying(
            via, lambda stub: stub.MemberList(rpc_pb2.MemberListRequest(), timeout=10), "\0")
        if isinstance(listing, str):
            return listing
        return next((int(m.ID) for m in listing.members if peer_url in m.peerURLs), "added, then not listed")

    def heal(self) -> None:
        """Lift every cut, resume paused members, restart killed ones."""
        self.cluster.proxy.heal()
        for member in self.cluster.members:
            if member.paused:
                self.cluster.resume(member.index)
            if not member.running:
                self.cluster.restart(member.index)
