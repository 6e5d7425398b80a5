"""The simulator running the production driver: real RaftNodes on a virtual clock.

Every member is a raft.node.RaftNode, the code that serves clients, over a MemoryStorage
(behind a log store that checks what is persisted and can crash mid-Ready), talking
through raft/memory_transport.py whose link policy is the seeded simulated network, with
an application task that consumes the apply queue the way pyetcd's server does. The event
loop runs on virtual time (virtual_clock.py) and the log is written inline, so a seed
replays exactly. Events, schedules and safety checks are the core-only simulator's
(cluster.py, schedule.py, invariants.py); on top, every Ready and every quiet moment
checks the driver's contract: the core never counts a conf change as applied before the
application applied it (thesis §4.1).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import traceback
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from raft.core import (
    ConfChange,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    ProposalDropped,
    Ready,
    Snapshot,
    StateRole,
)
from raft.memory_transport import MemoryNetwork, MemoryTransport
from raft.node import NodeConfig, RaftNode
from raft.sim.cluster import Cluster, CrashPoint, Member, SimConfig
from raft.sim.invariants import ReadRequest, Violation
from raft.sim.trace import Trace
from raft.sim.virtual_clock import InlineExecutor, VirtualClockLoop

TICK_SECONDS = 0.01
"""One simulated tick: the members' heartbeat interval, in virtual seconds."""
LATENCY_SECONDS = 0.0005
"""How long a healthy link takes; a delayed message takes whole ticks more."""
SLOW_APPLY_CHANCE = 0.2
"""How often the application takes one to three ticks over a batch."""


class CheckedLogStore:
    """A member's MemoryStorage as its driver sees it: saves are checked, and a crash can strike
    in the middle of a Ready. After the crash the incarnation's writes go nowhere, as a dead
    process's would."""

    def __init__(self, cluster: DrivenCluster, member: Member) -> None:
        self.cluster = cluster
        self.member = member
        self.storage = member.storage
        self.dead = False

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self.storage.initial_state()

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        return self.storage.entries(lo, hi, max_bytes)

    def term(self, index: int) -> int:
        return self.storage.term(index)

    def first_index(self) -> int:
        return self.storage.first_index()

    def last_index(self) -> int:
        return self.storage.last_index()

    def snapshot(self) -> Snapshot:
        return self.storage.snapshot()

    def save(self, hard_state: HardState | None, entries: list[Entry], snapshot: Snapshot | None,
             sync: bool = True) -> None:
        if self.dead or self.cluster.strike(self.member, CrashPoint.BEFORE_PERSIST,
                                            " before persisting its Ready"):
            return
        ready = Ready(hard_state=hard_state, entries=tuple(entries), snapshot=snapshot, must_sync=sync)
        self.cluster._persist(self.member, ready)
        self.cluster.check_conf_changes_applied(self.member)
        self.cluster.strike(self.member, CrashPoint.BEFORE_SEND, " after persisting, before acknowledging")

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        return self.storage.create_snapshot(index, conf_state, data)

    def compact(self, index: int) -> None:
        if not self.dead:
            self.storage.compact(index)

    def close(self) -> None:
        pass


@dataclass
class _Incarnation:
    """One run of a member's process: its driver, its end of the network, its log view, its tasks."""

    driver: RaftNode
    transport: MemoryTransport
    log: CheckedLogStore
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class DrivenCluster(Cluster):
    """The simulated cluster with the production driver in every member."""

    def __init__(self, rng: random.Random, nodes: int = 3, config: SimConfig | None = None,
                 trace: Trace | None = None) -> None:
        self.loop = VirtualClockLoop()
        self.memory_network = MemoryNetwork(self._link_delays)
        self.log_writer = InlineExecutor()
        self._incarnations: dict[int, _Incarnation] = {}
        self._failure: Violation | None = None
        try:
            super().__init__(rng, nodes=nodes, config=config, trace=trace)
        except BaseException:
            self.close()
            raise

    # -- the network: the seeded simulated network decides each message's fate ------------------

    def _link_delays(self, message: Message) -> list[float]:
        net = self.network
        f = net.faults
        net.sent += 1
        cut = not net.link_open(message.sender, message.to)
        if cut or (f.drop and self.rng.random() < f.drop):
            net.dropped += 1
            if net.observer is not None:
                net.observer(message, "cut" if cut else "dropped", ())
            return []
        copies = 2 if f.duplicate and self.rng.random() < f.duplicate else 1
        delays = []
        delay_ticks: list[int] = []
        for _ in range(copies):
            ticks = self.rng.randint(1, f.max_delay) if f.delay and self.rng.random() < f.delay else 0
            delay_ticks.append(ticks)
            delays.append(LATENCY_SECONDS + ticks * TICK_SECONDS)
        if net.observer is not None:
            net.observer(message, "sent", tuple(delay_ticks))
        return delays

    # -- life cycle ----------------------------------------------------------------------------

    def _start(self, m: Member, bootstrap: list[ConfChange] | None = None) -> None:
        c = self.config
        node_config = NodeConfig(
            member_id=m.id, heartbeat_ms=round(TICK_SECONDS * 1000),
            election_ms=round(TICK_SECONDS * 1000) * c.election_tick, pre_vote=c.pre_vote,
            max_size_per_msg=c.max_size_per_msg, max_inflight_msgs=c.max_inflight_msgs,
            random_seed=self.rng.getrandbits(32))
        log = CheckedLogStore(self, m)
        transport = self.memory_network.transport(m.id)
        driver = RaftNode(node_config, log, transport, applied_index=m.app.applied_index,
                          log_writer=self.log_writer)
        life = _Incarnation(driver, transport, log)
        self._incarnations[m.id] = life
        driver.add_leader_listener(lambda leader, term: self._on_leader(m, life, leader, term))
        m.begin_incarnation(driver.core)
        self._spawn(life, self._run(m, life, bootstrap))

    async def _run(self, m: Member, life: _Incarnation, bootstrap: list[ConfChange] | None) -> None:
        await life.driver.start(bootstrap)
        await self._apply_loop(m, life)

    async def _apply_loop(self, m: Member, life: _Incarnation) -> None:
        """The application: take batches in order, apply them, tell the driver (as pyetcd's server does)."""
        driver = life.driver
        while True:
            batch = await driver.apply_queue.get()
            if self.rng.random() < SLOW_APPLY_CHANCE:
                # A store transaction or fsync takes a while; the driver must not run ahead of it
                # past a conf change (later Readies come and go meanwhile).
                await asyncio.sleep(self.rng.randint(1, 3) * TICK_SECONDS)
            if self.strike(m, CrashPoint.BEFORE_APPLY, " before applying a committed batch"):
                return
            self._apply(m, Ready(snapshot=batch.snapshot, committed_entries=tuple(batch.entries)))
            if self._incarnations.get(m.id) is not life:
                return  # stopped while applying its own removal
            driver.apply_queue.task_done()
            if self.strike(m, CrashPoint.BEFORE_ADVANCE, " after applying a batch"):
                return

    def _apply_conf_change(self, m: Member, cc: ConfChange) -> ConfState:
        return self._incarnations[m.id].driver.apply_conf_change(cc)

    def _spawn(self, life: _Incarnation, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` as one of the incarnation's tasks; its first violation (or error) fails the run."""
        task = self.loop.create_task(work)
        task.add_done_callback(self._record_failure)
        life.tasks.append(task)

    def _record_failure(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        if isinstance(exc, Violation):
            self._failure = self._failure or exc
        elif exc is not None:
            tb = "".join(traceback.format_exception(exc)[-6:]).rstrip()
            self._failure = self._failure or Violation("driver raised", tb)

    def _on_leader(self, m: Member, life: _Incarnation, leader: int, term: int) -> None:
        if self._incarnations.get(m.id) is not life:
            return
        m.leader_id = leader
        if leader != m.id:
            if m.role is StateRole.LEADER:
                self.note(f"n{m.id} is no longer leader (term {term})")
            m.role = StateRole.FOLLOWER
            return
        m.role = StateRole.LEADER
        self.count("leaders elected")
        self.note(f"n{m.id} becomes LEADER of term {term}")
        try:
            self.checker.on_leader(m.id, term, m.storage)
        except Violation as v:
            self._failure = self._failure or v

    def strike(self, m: Member, point: CrashPoint, where: str) -> bool:
        """Crash `m` here if a crash is armed at `point`; True when it crashed."""
        if m.crash_at is not point or m.node is None:
            return False
        self._crash_now(m, where)
        return True

    def _crash_now(self, m: Member, where: str) -> None:
        life = self._incarnations.pop(m.id, None)
        super()._crash_now(m, where)
        if life is not None:
            self._bury(life)

    def _stop(self, m: Member) -> None:
        life = self._incarnations.pop(m.id, None)
        super()._stop(m)
        if life is not None:
            self._bury(life)

    def _bury(self, life: _Incarnation) -> None:
        """The process is gone: nothing more reaches its disk or the network."""
        life.log.dead = True
        life.transport.close()
        for task in life.tasks:
            task.cancel()
        self.loop.create_task(life.driver.stop())

    # -- the clock -----------------------------------------------------------------------------

    def tick(self, count: int = 1) -> None:
        for _ in range(count):
            self.now += 1
            for m in self.live_members():
                if m.stop_at is not None and m.stop_at <= self.now:
                    self._stop(m)
            self.loop.advance(TICK_SECONDS)
            self._check()

    def stabilize(self) -> None:
        self.loop.run_until_idle()
        self._check()

    def _check(self) -> None:
        if self._failure is not None:
            raise self._failure
        for life in self._incarnations.values():
            # A check that failed inside a save surfaces here: the driver stops on a failed save.
            err = life.driver.fatal_error
            if isinstance(err, Violation):
                raise err
            if err is not None:
                raise Violation("driver stopped", repr(err))
        for m in self.live_members():
            self.check_conf_changes_applied(m)

    def check_conf_changes_applied(self, m: Member) -> None:
        """The driver's contract (rawnode.py): the core's applied index never passes a conf change
        the application has not applied, or the core would count votes and quorums with a
        membership it has not switched to, and accept the next change too early (thesis §4.1)."""
        life = self._incarnations.get(m.id)
        if life is None:
            return
        self.checker.checks += 1
        core_applied = life.driver.core.raft.log.applied
        lo = max(m.app.applied_index + 1, m.storage.first_index())
        hi = min(core_applied, m.storage.last_index())
        if lo > hi:
            return
        for e in m.storage.entries(lo, hi + 1):
            if e.type is EntryType.CONF_CHANGE:
                raise Violation("ready contract", f"n{m.id}'s core counts the conf change at {e.index} as "
                                f"applied (applied index {core_applied}), but its application has applied "
                                f"only up to {m.app.applied_index}")

    # -- requests go through the driver's API --------------------------------------------------

    def _driver(self, m: Member) -> RaftNode:
        return self._incarnations[m.id].driver

    def _submit_proposal(self, m: Member, payload: bytes) -> None:
        self._driver(m).propose(payload)

    def _submit_conf_change(self, leader: Member, cc: ConfChange) -> None:
        self._driver(leader).propose_conf_change(cc)

    def _submit_transfer(self, leader: Member, target: int) -> None:
        driver = self._driver(leader)

        async def transfer() -> None:
            with contextlib.suppress(TimeoutError, ProposalDropped):
                await driver.transfer_leadership(target, timeout=self.config.election_tick * TICK_SECONDS)
        self._spawn(self._incarnations[leader.id], transfer())

    def _submit_campaign(self, m: Member) -> None:
        self._spawn(self._incarnations[m.id], self._driver(m).campaign())

    def read(self, m: Member) -> ReadRequest | None:
        """A client's ReadIndex read through the driver's `read_index` (thesis §6.4)."""
        life = self._incarnations.get(m.id)
        if life is None or m.node is None:
            return None
        self._next_read += 1
        ctx = f"r{self._next_read}".encode()
        read = ReadRequest(ctx, m.id, m.incarnation, self.now, self.checker.max_applied)
        self.reads[ctx] = read
        m.reads.append(read)
        self.count("reads")
        self.note(f"client reads {ctx.decode()} at n{m.id}: must observe index >= {read.min_index}")

        async def read_index() -> None:
            try:
                index = await life.driver.read_index()
            except (ProposalDropped, TimeoutError):
                self.reads.pop(ctx, None)
                if read in m.reads:
                    m.reads.remove(read)
                self.note(f"client read {ctx.decode()} at n{m.id} dropped")
                return
            self.checker.on_read_index(read, index)
            read.index = index
            self.note(f"n{m.id} read {ctx.decode()} gets read index {index}")
            self._serve_reads(m)
        self._spawn(life, read_index())
        self.stabilize()
        return read

    # -- the end ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop every driver and close the event loop."""
        for member_id in list(self._incarnations):
            self._bury(self._incarnations.pop(member_id))
        pending = asyncio.all_tasks(self.loop)
        for task in pending:
            task.cancel()
        if pending:
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.close()
