"""RaftNode: the asyncio driver around the sans-I/O core.

It ticks the core every heartbeat, steps the messages the transport delivers, and
runs each Ready through the shared cycle of raft/core/ready_cycle.py (the same code
the simulator and the interaction scripts run), supplying its I/O: send what may leave
now, persist (in the log writer thread, so the loop keeps stepping and ticking), send
the acknowledgements, hand committed entries to the application, then advance.
Proposals that arrive while a save is in flight pile up in the core and go out in
the next Ready together: one fsync for many entries (group commit).

The application takes batches from `apply_queue`, applies them in order (calling
`apply_conf_change` for CONF_CHANGE entries) and calls `apply_queue.task_done()` after
each. A Ready that commits a conf change waits for that before `advance`; the others
do not wait, so applying runs behind replication.

The clock is the event loop's (a virtual-time loop makes it deterministic, as the
simulator does) and the log writer is injectable, so a seeded run replays exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass

from raft.core import (
    NO_NODE,
    ConfChange,
    Config,
    ConfState,
    Entry,
    HardState,
    LogStore,
    Message,
    ProposalDropped,
    RaftError,
    RawNode,
    Ready,
    Snapshot,
    StateRole,
    Status,
    run_ready_cycle_async,
)
from raft.transport import Transport

logger = logging.getLogger(__name__)

LeaderListener = Callable[[int, int], None]
"""Called with (leader_id, term) whenever the known leader changes (0: no leader)."""


GROUP_COMMIT_WINDOW = 0.002
"""Seconds a busy leader leaves between Ready cycles, so proposals gather into one disk write.

Every cycle costs a log write, an fsync handed to a thread and an apply transaction, whatever
its size; under load a cycle per few entries spends most of the event loop on that. A leader
whose last cycle carried a single entry (or none) does not wait, so a lone client sees no delay."""


@dataclass(frozen=True)
class NodeConfig:
    """One member's Raft settings, in etcd's flag units (milliseconds, entries)."""

    member_id: int
    heartbeat_ms: int = 100  # etcd --heartbeat-interval
    election_ms: int = 1000  # etcd --election-timeout
    pre_vote: bool = True
    max_size_per_msg: int = 1 << 20
    max_inflight_msgs: int = 256
    snapshot_catchup_entries: int = 5000  # entries kept after a snapshot for slow followers (etcd's value)
    random_seed: int | None = None  # seeds the election timer's randomness (None: the member ID)

    @property
    def election_tick(self) -> int:
        return self.election_ms // self.heartbeat_ms


@dataclass(frozen=True)
class ApplyBatch:
    """What the application must apply next, in order: the snapshot first (if any), then the entries.

    After applying it the application calls `RaftNode.apply_queue.task_done()`.
    """

    entries: list[Entry]
    snapshot: Snapshot | None


class _DriverReadyHooks:
    """The driver's I/O for the steps of the shared Ready cycle (AsyncReadyHooks)."""

    def __init__(self, node: RaftNode) -> None:
        self._node = node

    def send(self, messages: Sequence[Message]) -> None:
        self._node._send(messages)

    async def persist(self, ready: Ready) -> None:
        await self._node._persist(ready)

    def apply(self, ready: Ready) -> None:
        self._node._hand_to_applier(ready)

    async def wait_applied(self) -> None:
        await self._node.apply_queue.join()


class RaftNode:
    """Drives one member's RawNode over a LogStore and a Transport on the running event loop."""

    def __init__(self, config: NodeConfig, log_store: LogStore, transport: Transport, *,
                 applied_index: int = 0,
                 snapshot_provider: Callable[[], Snapshot] | None = None,
                 log_writer: Executor | None = None) -> None:
        self.config = config
        self.log_store = log_store
        self.transport = transport
        self.apply_queue: asyncio.Queue[ApplyBatch] = asyncio.Queue()
        self.fatal_error: BaseException | None = None
        self.saves = 0  # Ready batches persisted
        self.saved_entries = 0
        self.read_rounds = 0  # ReadIndex requests made to the core
        # Shown every batch of messages the member sends, before the transport takes them. Only the
        # Raft view sets it, and only while a page is open; otherwise sending costs one None check.
        self.message_observer: Callable[[Sequence[Message]], None] | None = None
        self._snapshot_provider = snapshot_provider
        self._applied_index = applied_index
        # The core re-applies the conf changes up to `applied_index` that the snapshot does not cover.
        core_config = Config(
            id=config.member_id, election_tick=config.election_tick, heartbeat_tick=1,
            max_size_per_msg=config.max_size_per_msg, max_inflight_msgs=config.max_inflight_msgs,
            pre_vote=config.pre_vote, check_quorum=True, applied=applied_index,
            random_seed=config.random_seed, batch_appends=True,
        )
        self._rawnode = RawNode(core_config, log_store)
        hard_state, _ = log_store.initial_state()
        self._hard_state = hard_state
        self._leader_id = NO_NODE
        self._role = StateRole.FOLLOWER
        self._leader_listeners: list[LeaderListener] = []
        self._leader_waiters: list[tuple[int, asyncio.Future[None]]] = []
        # One writer thread keeps saves, snapshots and compactions in order; a simulation passes
        # one that runs them inline, so nothing depends on thread scheduling.
        self._owns_log_writer = log_writer is None
        self._log_writer: Executor = log_writer or ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"raftlog-{config.member_id:x}")
        self._ready_hooks = _DriverReadyHooks(self)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._running = False
        # ReadIndex rounds (thesis §6.4): callers wait for the next round, never join one already
        # asked, since its index may predate a write they saw acknowledged.
        self._read_next: asyncio.Future[int] | None = None
        self._read_wanted = asyncio.Event()
        self._read_inflight: dict[bytes, asyncio.Future[int]] = {}
        self._read_seq = int.from_bytes(os.urandom(4), "big") << 32
        transport.attach(self)

    # ------------------------------------------------------------ lifecycle

    async def start(self, bootstrap_peers: list[ConfChange] | None = None) -> None:
        """Start ticking and the Ready loop; bootstrap the membership only on an empty log."""
        if self._running:
            return
        hard_state, _ = self.log_store.initial_state()
        is_empty = (self.log_store.last_index() == 0 and hard_state == HardState()
                    and self.log_store.snapshot().is_empty)
        if bootstrap_peers and is_empty:
            self._rawnode.bootstrap(bootstrap_peers)
        else:
            self._hand_over_stored_snapshot()
        self._running = True
        loop = asyncio.get_running_loop()
        member = f"{self.config.member_id:x}"
        self._tasks = [
            loop.create_task(self._tick_loop(), name=f"raft-tick-{member}"),
            loop.create_task(self._ready_loop(), name=f"raft-ready-{member}"),
            loop.create_task(self._read_loop(), name=f"raft-read-{member}"),
        ]
        self._wake.set()

    async def stop(self) -> None:
        """Stop ticking and the loops and wait for the log writer; the transport's owner stops it."""
        self._running = False
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._fail_reads(ProposalDropped("raft node stopped"))
        for _, waiter in self._leader_waiters:
            if not waiter.done():
                waiter.cancel()
        self._leader_waiters.clear()
        if self._owns_log_writer:
            await asyncio.get_running_loop().run_in_executor(None, self._log_writer.shutdown, True)

    def advance_ticks(self, ticks: int) -> None:
        """Tick `ticks` times at once: etcd fast-forwards a fresh member's election clock this way,
        so that a lone voter campaigns after one heartbeat instead of a whole election timeout."""
        for _ in range(ticks):
            self._rawnode.tick()
        self._wake.set()

    def _hand_over_stored_snapshot(self) -> None:
        """Give the application the leader's snapshot the log holds if it has not applied that far.

        A crash between persisting an installed snapshot and the application storing it leaves
        a log that starts after the snapshot: the application can only catch up from its data.
        """
        snapshot = self.log_store.snapshot()
        if snapshot.data and snapshot.metadata.index > self._applied_index:
            self.apply_queue.put_nowait(ApplyBatch(entries=[], snapshot=snapshot))

    # ---------------------------------------------------------------- loops

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.config.heartbeat_ms / 1000
        deadline = loop.time() + interval
        while True:
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            # A stalled loop does not make up missed ticks in a burst (that would fire elections).
            deadline = max(deadline + interval, loop.time())
            self._rawnode.tick()
            self._wake.set()

    async def _ready_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_cycle = 0.0  # when a busy leader may start its next cycle (group commit)
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._rawnode.has_ready():
                    if self._role is StateRole.LEADER and (pause := next_cycle - loop.time()) > 0:
                        await asyncio.sleep(pause)
                    ready = self._rawnode.ready()
                    next_cycle = loop.time() + GROUP_COMMIT_WINDOW if len(ready.entries) > 1 else 0.0
                    await self._handle_ready(ready)
        except asyncio.CancelledError:
            raise
        except BaseException as err:
            # A failed save leaves memory ahead of disk: stop rather than risk answering wrongly.
            logger.critical("raft member %x stopped: %r", self.config.member_id, err, exc_info=True)
            self.fatal_error = err
            self._running = False
            self._fail_reads(ProposalDropped("raft node failed"))
            for task in self._tasks:
                if task is not asyncio.current_task():
                    task.cancel()

    async def _handle_ready(self, ready: Ready) -> None:
        """Note what the Ready says about leadership and reads, then run its cycle (raft/core/ready_cycle.py)."""
        if ready.hard_state is not None:
            self._hard_state = ready.hard_state
        if ready.soft_state is not None:
            self._on_soft_state(ready.soft_state.leader_id, ready.soft_state.role)
        for read_state in ready.read_states:
            waiter = self._read_inflight.get(read_state.request_ctx)
            if waiter is not None and not waiter.done():
                waiter.set_result(read_state.index)
        await run_ready_cycle_async(self._rawnode, ready, self._ready_hooks)

    # The driver's steps of the Ready cycle (through _DriverReadyHooks).

    async def _persist(self, ready: Ready) -> None:
        """Save in the log writer thread, so the loop keeps stepping, ticking and replicating."""
        if not ready.has_durable_state:
            return
        if ready.entries and ready.messages:
            # One loop step for the peer streams' tasks to put the appends on the wire before our
            # own save goes to the log writer thread, whose work competes with them for the interpreter.
            await asyncio.sleep(0)
        has_snapshot = ready.snapshot is not None and not ready.snapshot.is_empty
        await asyncio.get_running_loop().run_in_executor(
            self._log_writer, self.log_store.save, ready.hard_state, list(ready.entries),
            ready.snapshot if has_snapshot else None, ready.must_sync)
        self.saves += 1
        self.saved_entries += len(ready.entries)

    def _hand_to_applier(self, ready: Ready) -> None:
        has_snapshot = ready.snapshot is not None and not ready.snapshot.is_empty
        if has_snapshot or ready.committed_entries:
            self.apply_queue.put_nowait(ApplyBatch(entries=list(ready.committed_entries),
                                                   snapshot=ready.snapshot if has_snapshot else None))

    def _send(self, messages: Sequence[Message]) -> None:
        if self.message_observer is not None:
            self.message_observer(messages)
        self.transport.send(messages)

    def _on_soft_state(self, leader_id: int, role: StateRole) -> None:
        self._role = role
        if leader_id == self._leader_id:
            return
        self._leader_id = leader_id
        term = self._hard_state.term
        logger.info("raft member %x sees leader %x at term %d", self.config.member_id, leader_id, term)
        for listener in list(self._leader_listeners):
            try:
                listener(leader_id, term)
            except Exception:
                logger.exception("leader listener failed")
        remaining = []
        for wanted, waiter in self._leader_waiters:
            if waiter.done():
                continue
            if leader_id != NO_NODE and wanted == leader_id:
                waiter.set_result(None)
            else:
                remaining.append((wanted, waiter))
        self._leader_waiters = remaining

    # ------------------------------------------------------------ proposals

    def propose(self, data: bytes) -> None:
        """Propose `data` as a NORMAL entry; raises ProposalDropped when no leader can take it."""
        self._check_running()
        self._rawnode.propose(data)
        self._wake.set()

    def propose_conf_change(self, cc: ConfChange) -> None:
        self._check_running()
        self._rawnode.propose_conf_change(cc)
        self._wake.set()

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        """Apply a committed conf change to the core; call it while applying that entry."""
        conf_state = self._rawnode.apply_conf_change(cc)
        self._wake.set()
        return conf_state

    async def campaign(self) -> None:
        self._check_running()
        self._rawnode.campaign()
        self._wake.set()

    async def transfer_leadership(self, target: int, timeout: float) -> None:
        """Ask the leader to hand over to `target` (thesis §3.10); asyncio.TimeoutError if it does not."""
        self._check_running()
        if self._leader_id == target:
            return
        waiter = self._leader_waiter(target)
        self._rawnode.transfer_leader(target)
        self._wake.set()
        await asyncio.wait_for(waiter, timeout)

    def _leader_waiter(self, wanted: int) -> asyncio.Future[None]:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._leader_waiters.append((wanted, waiter))
        return waiter

    def _check_running(self) -> None:
        if not self._running:
            raise ProposalDropped("raft node is not running")

    # ------------------------------------------------------------ ReadIndex

    async def read_index(self) -> int:
        """The commit index a linearizable read must wait to see applied (thesis §6.4 ReadIndex).

        Concurrent callers share one round. Raises ProposalDropped without a leader and
        asyncio.TimeoutError when no answer comes within an election timeout.
        """
        self._check_running()
        if self._leader_id == NO_NODE:
            raise ProposalDropped("no leader")
        if self._read_next is None:
            self._read_next = asyncio.get_running_loop().create_future()
            # Keep an abandoned round's error from being reported as never retrieved.
            self._read_next.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._read_wanted.set()
        return await asyncio.shield(self._read_next)

    async def _read_loop(self) -> None:
        timeout = self.config.election_ms / 1000
        while True:
            await self._read_wanted.wait()
            self._read_wanted.clear()
            waiter, self._read_next = self._read_next, None
            if waiter is None or waiter.done():
                continue
            self._read_seq += 1
            ctx = self.config.member_id.to_bytes(8, "big") + self._read_seq.to_bytes(8, "big")
            self.read_rounds += 1
            try:
                self._rawnode.read_index(ctx)
            except RaftError as err:
                waiter.set_exception(err)
                continue
            self._read_inflight[ctx] = waiter
            self._wake.set()
            # On cancellation the waiter stays in _read_inflight, for stop() to fail it.
            await asyncio.wait({waiter}, timeout=timeout)
            self._read_inflight.pop(ctx, None)
            if not waiter.done():
                waiter.set_exception(TimeoutError("read index: no answer within an election timeout"))

    def _fail_reads(self, err: Exception) -> None:
        waiters = list(self._read_inflight.values())
        if self._read_next is not None:
            waiters.append(self._read_next)
            self._read_next = None
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(err)
        self._read_inflight.clear()

    # ------------------------------------------------------------ snapshots

    def create_snapshot(self, index: int, conf_state: ConfState) -> None:
        """Record that the application applied `index`, then compact the log behind it.

        `snapshot_catchup_entries` entries are kept so a slightly slow follower still
        catches up from the log instead of needing a whole snapshot.
        """
        def record_and_compact() -> None:
            try:
                self.log_store.create_snapshot(index, conf_state, b"")
            except (ValueError, RaftError) as err:
                logger.debug("snapshot at %d not recorded: %s", index, err)
                return
            compact_to = index - self.config.snapshot_catchup_entries
            if compact_to >= self.log_store.first_index():
                self.log_store.compact(compact_to)

        def report(future: Future[None]) -> None:
            if future.exception() is not None:
                logger.error("snapshot at %d failed: %r", index, future.exception())

        self._log_writer.submit(record_and_compact).add_done_callback(report)

    # ------------------------------------------------- transport callbacks

    def receive(self, message: Message) -> None:
        if not self._running:
            return
        try:
            self._rawnode.step(message)
        except RaftError as err:
            logger.debug("dropped %s from %x: %s", message.type.name, message.sender, err)
        self._wake.set()

    def report_unreachable(self, peer_id: int) -> None:
        if self._running:
            self._rawnode.report_unreachable(peer_id)
            self._wake.set()

    def report_snapshot(self, peer_id: int, failed: bool) -> None:
        if self._running:
            self._rawnode.report_snapshot(peer_id, failed)
            self._wake.set()

    def snapshot_to_send(self, message: Message) -> Snapshot:
        """The application's applied state replaces the log store's metadata-only snapshot (as etcd does)."""
        if self._snapshot_provider is not None:
            return self._snapshot_provider()
        assert message.snapshot is not None
        return message.snapshot

    # -------------------------------------------------------------- status

    @property
    def core(self) -> RawNode:
        """The sans-I/O core this driver runs: for reading (the simulator's checks), never for driving."""
        return self._rawnode

    def add_leader_listener(self, listener: LeaderListener) -> None:
        self._leader_listeners.append(listener)

    def status(self) -> Status:
        return self._rawnode.status()

    @property
    def leader_id(self) -> int:
        return self._leader_id

    @property
    def term(self) -> int:
        return self._hard_state.term

    @property
    def is_leader(self) -> bool:
        return self._role == StateRole.LEADER

    @property
    def commit_index(self) -> int:
        return self._hard_state.commit
