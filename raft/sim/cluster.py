"""An in-process cluster of RawNodes driven by one seeded clock and network.

Each member runs its Readies through the shared Ready cycle (raft/core/ready_cycle.py),
with hooks that persist to a MemoryStorage, send on the simulated network and apply to a
list. raft/sim/driven.py runs the production driver itself (raft/node.py) instead. Crashes may strike
between those phases; what was persisted survives, everything else is lost.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from raft.core import (
    ConfChange,
    ConfChangeType,
    Config,
    ConfState,
    EntryType,
    HardState,
    MemoryStorage,
    Message,
    MessageType,
    ProposalDropped,
    RawNode,
    Ready,
    StateRole,
    decode_conf_change,
    run_ready_cycle,
)
from raft.core.storage import Storage
from raft.sim.app import AppliedEntry, AppState
from raft.sim.invariants import ReadRequest, SafetyChecker, Violation
from raft.sim.network import Network
from raft.sim.trace import Trace, describe_entries, describe_entry


class CrashPoint(enum.IntEnum):
    """Where in the Ready cycle a crash strikes (the steps in `Ready`'s docstring)."""

    NOW = 0  # between Ready cycles
    BEFORE_PERSIST = 1  # the Ready was taken, its early messages may have left, nothing was written
    BEFORE_SEND = 2  # persisted, but no acknowledgement left
    BEFORE_APPLY = 3  # persisted and sent, nothing applied
    BEFORE_ADVANCE = 4  # applied, but the core never heard `advance`


class _Crashed(Exception):
    """Raised inside a Ready cycle when an armed crash strikes; the cycle stops there."""


class _MemberHooks:
    """One simulated member's side of the shared Ready cycle, with its armed crash point."""

    def __init__(self, cluster: Cluster, member: Member) -> None:
        self.cluster = cluster
        self.member = member

    def _strike(self, point: CrashPoint, where: str) -> None:
        if self.member.crash_at is point:
            self.cluster._crash_now(self.member, where)
            raise _Crashed

    def send(self, messages: Sequence[Message]) -> None:
        if self.member.node is not None:
            self.cluster._send(self.member, messages)

    def persist(self, rd: Ready) -> None:
        self._strike(CrashPoint.BEFORE_PERSIST, " before persisting its Ready")
        self.cluster._persist(self.member, rd)
        self._strike(CrashPoint.BEFORE_SEND, " after persisting, before acknowledging")

    def apply(self, rd: Ready) -> None:
        self._strike(CrashPoint.BEFORE_APPLY, " after sending, before applying")
        self.cluster._apply(self.member, rd)
        if self.member.node is None:
            raise _Crashed  # stopped while applying its own removal
        self._strike(CrashPoint.BEFORE_ADVANCE, " after applying, before advance")


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Knobs of the simulated members; small flow-control windows make the rare paths common."""

    election_tick: int = 10
    heartbeat_tick: int = 1
    max_size_per_msg: int = 256
    max_inflight_msgs: int = 4
    max_committed_size_per_ready: int = 64 * 1024 * 1024
    pre_vote: bool = True
    check_quorum: bool = True
    batch_appends: bool = False  # the core's Config.batch_appends, which the production driver turns on
    # etcd stops a member that applied its own removal after a short delay, so the
    # commit still reaches the others through its heartbeats.
    removed_grace_ticks: int = 20
    max_steps_per_tick: int = 20_000


@dataclass(slots=True)
class Proposal:
    """A client's proposal; it is acknowledged when some member applies it."""

    payload: bytes
    member: int
    proposed_tick: int
    acked_index: int | None = None


@dataclass(slots=True)
class Member:
    """One simulated server: durable storage and app state, plus a RawNode while it runs."""

    id: int
    storage: MemoryStorage
    app: AppState = field(default_factory=AppState)
    node: RawNode | None = None
    incarnation: int = 0
    hard_state: HardState = field(default_factory=HardState)  # the last one persisted
    # The last hard state made durable by an fsync: a Ready with must_sync=False (only the commit
    # index moved) is written but not synced, so a crash may take it back to this one.
    synced_hard_state: HardState = field(default_factory=HardState)
    role: StateRole = StateRole.FOLLOWER
    leader_id: int = 0
    crashed: bool = False
    stopped: bool = False  # applied its own removal and shut down for good
    stop_at: int | None = None
    crash_at: CrashPoint | None = None
    reads: list[ReadRequest] = field(default_factory=list)

    @property
    def live(self) -> bool:
        return self.node is not None

    def begin_incarnation(self, node: RawNode) -> None:
        """Run `node` as this member's new life: a (re)started server knows only what it persisted."""
        self.node = node
        self.incarnation += 1
        self.crashed = False
        self.crash_at = None
        self.role = StateRole.FOLLOWER
        self.leader_id = 0
        self.hard_state, _ = self.storage.initial_state()
        self.synced_hard_state = self.hard_state

    @property
    def term(self) -> int:
        return self.hard_state.term

    @property
    def commit(self) -> int:
        return self.hard_state.commit


class Cluster:
    """Members, network and clock of one simulated run, with the safety checker watching."""

    def __init__(self, rng: random.Random, nodes: int = 3, config: SimConfig | None = None,
                 trace: Trace | None = None) -> None:
        self.rng = rng
        self.config = config or SimConfig()
        self.trace = trace or Trace()
        self.network = Network(rng)
        self.checker = SafetyChecker()
        self.members: dict[int, Member] = {}
        self.now = 0
        self.next_id = nodes + 1
        self.reads: dict[bytes, ReadRequest] = {}
        self.proposals: dict[bytes, Proposal] = {}
        self._next_payload = 0
        self._next_read = 0
        self._next_cc_id = 0
        self.pending_conf: tuple[ConfChange, int] | None = None  # (change, proposed tick)
        self._applied_conf_changes: set[int] = set()
        self._reports: list[tuple[int, Message, bool]] = []  # (sender, message, delivered)
        self.stats: dict[str, int] = {}
        self.trace.bind(self)
        peers = [ConfChange(ConfChangeType.ADD_NODE, i) for i in range(1, nodes + 1)]
        for i in range(1, nodes + 1):
            m = Member(i, MemoryStorage())
            self.members[i] = m
            self._start(m, bootstrap=peers)
        self.note(f"bootstrap: members {list(range(1, nodes + 1))} as voters")
        self.stabilize()

    # -- bookkeeping ---------------------------------------------------------------------------

    def note(self, text: str) -> None:
        if self.trace.enabled:
            self.trace.note(self.now, text)

    def _core_logger(self, line: str) -> None:
        self.note(f"    core: {line}")

    def count(self, what: str) -> None:
        self.stats[what] = self.stats.get(what, 0) + 1

    def live_members(self) -> list[Member]:
        return [m for _, m in sorted(self.members.items()) if m.node is not None]

    def leaders(self) -> list[Member]:
        return [m for m in self.live_members() if m.role is StateRole.LEADER]

    def leader(self) -> Member | None:
        """The live leader of the highest term, if any."""
        best: Member | None = None
        for m in self.leaders():
            if best is None or m.term > best.term:
                best = m
        return best

    def latest_conf(self) -> ConfState:
        """The membership of the member that has applied the most: the newest the cluster knows."""
        best = max((m for m in self.members.values() if not m.stopped), key=lambda m: m.app.applied_index)
        return best.app.conf_state

    def _leader_views(self) -> list[tuple[int, int, Storage]]:
        return [(m.id, m.term, m.storage) for m in self.leaders()]

    # -- life cycle ----------------------------------------------------------------------------

    def _start(self, m: Member, bootstrap: list[ConfChange] | None = None) -> None:
        """Start a member over what it persisted (a brand-new cluster's members bootstrap first)."""
        c = self.config
        cfg = Config(
            m.id,
            election_tick=c.election_tick,
            heartbeat_tick=c.heartbeat_tick,
            max_size_per_msg=c.max_size_per_msg,
            max_inflight_msgs=c.max_inflight_msgs,
            max_committed_size_per_ready=c.max_committed_size_per_ready,
            pre_vote=c.pre_vote,
            check_quorum=c.check_quorum,
            batch_appends=c.batch_appends,
            applied=m.app.applied_index,
            random_seed=self.rng.getrandbits(32),
            logger=self._core_logger if self.trace.core_lines else None,
        )
        node = RawNode(cfg, m.storage)
        m.begin_incarnation(node)
        if bootstrap:
            node.bootstrap(bootstrap)

    def crash(self, m: Member, point: CrashPoint = CrashPoint.NOW) -> None:
        """Crash `m` now, or arm a crash that strikes at `point` of its next Ready cycle."""
        if m.node is None:
            return
        if point is not CrashPoint.NOW:
            m.crash_at = point
            self.note(f"n{m.id} will crash {point.name.lower().replace('_', ' ')} of its next Ready")
            return
        self._crash_now(m, "")

    def _crash_now(self, m: Member, where: str) -> None:
        self.count("crashes")
        if m.storage.initial_state()[0] != m.synced_hard_state:
            m.storage.set_hard_state(m.synced_hard_state)
            self.count("unsynced commits lost")
            self.note(f"n{m.id} loses its unsynced commit index {m.commit} (back to {m.synced_hard_state.commit})")
        m.node = None
        m.crashed = True
        m.crash_at = None
        m.role = StateRole.FOLLOWER
        m.leader_id = 0
        for read in m.reads:
            self.reads.pop(read.ctx, None)
        m.reads.clear()
        self.note(f"CRASH n{m.id}{where}: volatile state and unpersisted Ready parts are lost")

    def restart(self, m: Member) -> None:
        """Start a new RawNode over what `m` persisted, resuming after what its app had applied."""
        if m.node is not None or m.stopped:
            return
        snap = m.storage.snapshot()
        if snap.metadata.index > m.app.applied_index:
            # The app reloads the newer snapshot it persisted but had not yet applied.
            state = AppState.decode(snap.data, snap.metadata.index, snap.metadata.conf_state)
            self.checker.on_restored(m.id, state)
            m.app = state
        self._start(m)
        self.count("restarts")
        self.note(f"RESTART n{m.id} at term {m.term}, commit {m.commit}, applied {m.app.applied_index}")

    def _add_member(self, node_id: int, as_learner: bool) -> None:
        m = Member(node_id, MemoryStorage())
        self.members[node_id] = m
        self._start(m)
        role = "learner" if as_learner else "voter"
        self.note(f"n{node_id} starts empty as a new {role}, waiting to hear from the leader")

    def _stop(self, m: Member) -> None:
        m.node = None
        m.stopped = True
        m.role = StateRole.FOLLOWER
        for read in m.reads:
            self.reads.pop(read.ctx, None)
        m.reads.clear()
        self.note(f"n{m.id} shuts down: it was removed from the cluster")

    # -- the clock -----------------------------------------------------------------------------

    def tick(self, count: int = 1) -> None:
        for _ in range(count):
            self.now += 1
            for m in self.live_members():
                if m.stop_at is not None and m.stop_at <= self.now:
                    self._stop(m)
                    continue
                assert m.node is not None
                m.node.tick()
            self.stabilize()

    def stabilize(self) -> None:
        """Handle Readies and deliver due messages until nothing is left to do this tick."""
        for _ in range(self.config.max_steps_per_tick):
            progress = False
            for m in self.live_members():
                if m.node is not None and m.node.has_ready():
                    self.handle_ready(m)
                    progress = True
            for msg in self.network.take_due(self.now):
                progress = True
                self.deliver(msg)
            if not progress:
                return
        raise Violation("quiescence", f"members still busy after {self.config.max_steps_per_tick} rounds")

    def deliver(self, msg: Message) -> None:
        dst = self.members.get(msg.to)
        delivered = dst is not None and dst.node is not None and self.network.link_open(msg.sender, msg.to)
        if msg.type is MessageType.SNAP:
            self._reports.append((msg.sender, msg, delivered))
        if not delivered or dst is None or dst.node is None:
            if self.trace.enabled and describe_message(msg):
                self.note(f"n{msg.sender}'s {msg.type.name} to n{msg.to} is lost in flight")
            return
        dst.node.step(msg)
        # A batching member, like the driver, takes its next Ready only after what arrived meanwhile has
        # been stepped (stabilize's next round), so its deferred sends really wait, across role changes too.
        if dst.node.has_ready() and not self.config.batch_appends:
            self.handle_ready(dst)
        self._flush_reports()

    def _flush_reports(self) -> None:
        """Tell senders how snapshot sends went (the transport's job), outside any Ready cycle."""
        while self._reports:
            sender, msg, delivered = self._reports.pop(0)
            m = self.members.get(sender)
            if m is None or m.node is None:
                continue
            if msg.type is MessageType.SNAP:
                self.note(f"transport: snapshot to n{msg.to} {'delivered' if delivered else 'FAILED'}")
                m.node.report_snapshot(msg.to, not delivered)
            else:
                m.node.report_unreachable(msg.to)

    # -- the Ready cycle -----------------------------------------------------------------------

    def handle_ready(self, m: Member) -> None:
        node = m.node
        assert node is not None
        rd = node.ready()
        try:
            run_ready_cycle(node, rd, _MemberHooks(self, m))
        except _Crashed:
            return
        self._flush_reports()

    def _persist(self, m: Member, rd: Ready) -> None:
        """Step 1: make the hard state, entries and snapshot durable, then check what changed."""
        m.storage.save(rd.hard_state, list(rd.entries), rd.snapshot, sync=rd.must_sync)
        if rd.must_sync:
            m.synced_hard_state = m.storage.initial_state()[0]
        hs = rd.hard_state
        if hs is not None:
            if self.trace.enabled:
                if hs.term != m.term:
                    self.note(f"n{m.id} term {m.term} -> {hs.term}")
                if hs.commit != m.commit:
                    self.note(f"n{m.id} commit index {m.commit} -> {hs.commit}")
            self.checker.on_hard_state(m.id, m.hard_state, hs)
            m.hard_state = hs
        if rd.entries:
            self.note(f"n{m.id} appends {describe_entries(rd.entries)}")
            self.checker.on_persisted(m.id, rd.entries, m.storage)
        if rd.snapshot is not None and not rd.snapshot.is_empty:
            meta = rd.snapshot.metadata
            self.count("snapshots installed")
            self.note(f"n{m.id} installs snapshot at {meta.index}@{meta.term} "
                      f"voters={list(meta.conf_state.voters)}")
            self.checker.on_snapshot_persisted(m.id, m.term, meta, self._leader_views())
        ss = rd.soft_state
        if ss is not None:
            if ss.role is not m.role:
                self._note_role(m, ss.role)
            m.role, m.leader_id = ss.role, ss.leader_id
            if ss.role is StateRole.LEADER:
                self.count("leaders elected")
                self.checker.on_leader(m.id, m.term, m.storage)

    def _note_role(self, m: Member, role: StateRole) -> None:
        if not self.trace.enabled:
            return
        if role is StateRole.LEADER:
            self.note(f"n{m.id} becomes LEADER of term {m.term}")
        elif role is StateRole.CANDIDATE:
            self.note(f"n{m.id} becomes candidate in term {m.term} and asks for votes")
        elif role is StateRole.PRE_CANDIDATE:
            self.note(f"n{m.id} becomes pre-candidate: asks whether it could win term {m.term + 1}")
        else:
            self.note(f"n{m.id} becomes follower in term {m.term}")

    def _send(self, m: Member, messages: Sequence[Message]) -> None:
        """Messages leave when the Ready cycle says so (acknowledgements only after persisting, §5)."""
        for msg in messages:
            lost = not self.network.send(msg, self.now)
            if self.trace.enabled:
                text = describe_message(msg)
                if text:
                    self.note(text + (" [lost]" if lost else ""))
            # The transport notices a failed snapshot send or a cut link, not a silently lost packet.
            if lost and (msg.type is MessageType.SNAP or not self.network.link_open(msg.sender, msg.to)):
                self._reports.append((m.id, msg, False))

    def _apply(self, m: Member, rd: Ready) -> None:
        """Step 3: apply the snapshot, then committed entries in order; serve ReadIndex reads."""
        if rd.snapshot is not None and not rd.snapshot.is_empty:
            meta = rd.snapshot.metadata
            if meta.index <= m.app.applied_index:
                raise Violation("state machine safety", f"n{m.id} was given snapshot {meta.index} "
                                f"but already applied {m.app.applied_index}")
            state = AppState.decode(rd.snapshot.data, meta.index, meta.conf_state)
            self.checker.on_restored(m.id, state)
            m.app = state
        if rd.committed_entries:
            self.checker.on_committed(m.id, m.term, rd.committed_entries, self._leader_views())
        for e in rd.committed_entries:
            applied = AppliedEntry(e.index, e.type, e.data)
            self.checker.on_applied(m.id, m.app, applied)
            m.app.apply(applied)
            self.note(f"n{m.id} applies {describe_entry(e)}")
            if e.type is EntryType.CONF_CHANGE:
                cc = decode_conf_change(e.data)
                m.app.conf_state = self._apply_conf_change(m, cc)
                if cc.id:  # bootstrap entries (id 0) are applied at once by bootstrap() itself, so skip them
                    self.checker.on_conf_applied(m.id, e.index, m.app.conf_state)
                self._conf_change_applied(m, cc)
            elif e.data:
                p = self.proposals.get(e.data)
                if p is not None and p.acked_index is None:
                    p.acked_index = e.index
        for rs in rd.read_states:
            read = self.reads.get(rs.request_ctx)
            if read is None or read.member != m.id or read.index is not None:
                continue
            self.checker.on_read_index(read, rs.index)
            read.index = rs.index
            self.note(f"n{m.id} read {rs.request_ctx.decode()} gets read index {rs.index}")
        self._serve_reads(m)

    def _apply_conf_change(self, m: Member, cc: ConfChange) -> ConfState:
        node = m.node
        assert node is not None
        return node.apply_conf_change(cc)

    def _serve_reads(self, m: Member) -> None:
        if not m.reads:
            return
        waiting: list[ReadRequest] = []
        for read in m.reads:
            if read.index is not None and m.app.applied_index >= read.index:
                self.checker.on_read_served(read, m.app)
                read.result_applied = m.app.applied_index
                self.reads.pop(read.ctx, None)
                self.count("reads served")
                self.note(f"n{m.id} serves read {read.ctx.decode()} from applied index {m.app.applied_index}")
            else:
                waiting.append(read)
        m.reads = waiting

    def _conf_change_applied(self, m: Member, cc: ConfChange) -> None:
        if self.pending_conf is not None and self.pending_conf[0].id == cc.id:
            self.pending_conf = None
        if cc.id and cc.id not in self._applied_conf_changes:
            self._applied_conf_changes.add(cc.id)
            self.count(f"conf changes applied: {cc.type.name}")
        verb = {ConfChangeType.ADD_NODE: "adds voter", ConfChangeType.ADD_LEARNER_NODE: "adds learner",
                ConfChangeType.REMOVE_NODE: "removes", ConfChangeType.UPDATE_NODE: "updates"}[cc.type]
        self.note(f"n{m.id} {verb} n{cc.node_id}: voters={list(m.app.conf_state.voters)} "
                  f"learners={list(m.app.conf_state.learners)}")
        adds = (ConfChangeType.ADD_NODE, ConfChangeType.ADD_LEARNER_NODE)
        if cc.type in adds and cc.node_id not in self.members:
            self._add_member(cc.node_id, cc.type is ConfChangeType.ADD_LEARNER_NODE)
        if cc.type is ConfChangeType.REMOVE_NODE and cc.node_id == m.id and m.stop_at is None:
            m.stop_at = self.now + self.config.removed_grace_ticks

    # -- clients -------------------------------------------------------------------------------

    def propose(self, m: Member) -> Proposal | None:
        """A client proposes a unique payload at `m` (a follower forwards it to its leader)."""
        if m.node is None:
            return None
        self._next_payload += 1
        payload = f"p{self._next_payload}".encode()
        try:
            self._submit_proposal(m, payload)
        except ProposalDropped:
            self.count("proposals dropped")
            self.note(f"client proposal {payload.decode()} at n{m.id} dropped (no leader / transfer)")
            return None
        p = Proposal(payload, m.id, self.now)
        self.proposals[payload] = p
        self.count("proposals")
        self.note(f"client proposes {payload.decode()} at n{m.id}")
        self.stabilize()
        return p

    def read(self, m: Member) -> ReadRequest | None:
        """A client starts a ReadIndex read at `m` (thesis §6.4)."""
        if m.node is None:
            return None
        self._next_read += 1
        ctx = f"r{self._next_read}".encode()
        read = ReadRequest(ctx, m.id, m.incarnation, self.now, self.checker.max_applied)
        try:
            m.node.read_index(ctx)
        except ProposalDropped:
            self.note(f"client read {ctx.decode()} at n{m.id} dropped")
            return None
        self.reads[ctx] = read
        m.reads.append(read)
        self.count("reads")
        self.note(f"client reads {ctx.decode()} at n{m.id}: must observe index >= {read.min_index}")
        self.stabilize()
        return read

    def propose_conf_change(self, cc_type: ConfChangeType, node_id: int) -> bool:
        """Ask the leader for a membership change; one at a time (thesis §4.1)."""
        leader = self.leader()
        if leader is None or leader.node is None:
            return False
        self._next_cc_id += 1
        cc = ConfChange(cc_type, node_id, id=self._next_cc_id)
        try:
            self._submit_conf_change(leader, cc)
        except ProposalDropped:
            self.note(f"conf change {cc_type.name} n{node_id} dropped by n{leader.id}")
            return False
        self.pending_conf = (cc, self.now)
        self.count("conf changes proposed")
        self.note(f"admin proposes {cc_type.name} n{node_id} at leader n{leader.id}")
        self.stabilize()
        return True

    def new_member_id(self) -> int:
        node_id = self.next_id
        self.next_id += 1
        return node_id

    def take_snapshot(self, m: Member, keep: int) -> None:
        """The app snapshots its applied state and compacts the log, keeping `keep` entries before it."""
        if m.stopped:
            return
        index = m.app.applied_index
        if index <= m.storage.snapshot().metadata.index or index == 0:
            return
        m.storage.create_snapshot(index, m.app.conf_state, m.app.encode())
        compact_to = max(index - keep, m.storage.first_index() - 1)
        if compact_to >= m.storage.first_index():
            m.storage.compact(compact_to)
        self.count("snapshots taken")
        self.note(f"n{m.id} snapshots at applied index {index} and compacts its log through {compact_to}")

    def transfer_leader(self, target: Member) -> None:
        leader = self.leader()
        if leader is None or leader.node is None or target.id == leader.id:
            return
        self.note(f"admin asks leader n{leader.id} to hand leadership to n{target.id}")
        self.count("transfers")
        self._submit_transfer(leader, target.id)
        self.stabilize()

    def campaign(self, m: Member) -> None:
        if m.node is None:
            return
        self.note(f"n{m.id} is told to campaign now")
        self._submit_campaign(m)
        self.stabilize()

    # How requests reach a member's core: straight into its RawNode here; driven.py overrides
    # them to go through the production driver's API.

    def _submit_proposal(self, m: Member, payload: bytes) -> None:
        assert m.node is not None
        m.node.propose(payload)

    def _submit_conf_change(self, leader: Member, cc: ConfChange) -> None:
        assert leader.node is not None
        leader.node.propose_conf_change(cc)

    def _submit_transfer(self, leader: Member, target: int) -> None:
        assert leader.node is not None
        leader.node.transfer_leader(target)

    def _submit_campaign(self, m: Member) -> None:
        assert m.node is not None
        m.node.campaign()

    # -- end-of-run checks ---------------------------------------------------------------------

    def close(self) -> None:
        """Release what the run holds (nothing here; the driven cluster closes its event loop)."""

    def check_logs(self) -> None:
        self.checker.check_logs_match({m.id: m.storage for m in self.members.values()})


def describe_message(msg: Message) -> str:
    """A trace line for the messages a learner cares about; empty for routine traffic."""
    t = msg.type
    if t is MessageType.VOTE_RESP and not msg.reject:
        return f"n{msg.sender} votes for n{msg.to} in term {msg.term}"
    if t is MessageType.VOTE_RESP:
        return f"n{msg.sender} refuses its vote to n{msg.to} in term {msg.term}"
    if t is MessageType.PRE_VOTE_RESP and not msg.reject:
        return f"n{msg.sender} would vote for n{msg.to} in term {msg.term} (pre-vote)"
    if t is MessageType.SNAP and msg.snapshot is not None:
        meta = msg.snapshot.metadata
        return (f"n{msg.sender} sends snapshot {meta.index}@{meta.term} to n{msg.to}: "
                "the entries it needs were compacted")
    if t is MessageType.TIMEOUT_NOW:
        return f"n{msg.sender} tells n{msg.to} to campaign now (leader transfer)"
    if t is MessageType.APP and msg.entries:
        return (f"n{msg.sender} -> n{msg.to}: append {describe_entries(msg.entries)} after "
                f"{msg.index}@{msg.log_term}, commit {msg.commit}")
    return ""
