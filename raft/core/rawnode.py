"""RawNode: the public face of the core. Inputs go in (tick, step, propose, ...); a Ready comes out.

The application loop is: while `has_ready()`: `rd = ready()`, send rd.messages (they may
go out while the write runs), persist rd's hard state, entries and snapshot, then send
rd.messages_after_append, apply rd.snapshot and rd.committed_entries (calling
`apply_conf_change` for CONF_CHANGE entries), act on rd.read_states, then `advance(rd)`.
Readies must be persisted and advanced in the order they were taken. The contract that
matters most: every CONF_CHANGE entry of a Ready is applied (`apply_conf_change`) before
that Ready is advanced; normal entries may be applied later, in order (see `Ready`).
raft/core/ready_cycle.py writes this order once and runs it for the synchronous embedders
and, with awaits, for the asyncio driver (raft/node.py).
"""

from __future__ import annotations

import contextlib

from raft.core.codec import encode_conf_change
from raft.core.config import Config
from raft.core.raft import LOCAL_MESSAGES, RESPONSE_MESSAGES, Raft
from raft.core.status import ProgressStatus, Status
from raft.core.storage import Storage
from raft.core.types import (
    NO_NODE,
    ConfChange,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ProposalDropped,
    RaftError,
    Ready,
    StateRole,
)


class RawNode:
    """One member's Raft core, driven by the application (no threads, no clock, no I/O)."""

    __slots__ = ("raft", "_prev_soft_state", "_prev_hard_state", "_max_committed_size")

    def __init__(self, config: Config, storage: Storage) -> None:
        """Restore the member from `storage` (hard state, membership, log) and start as a follower."""
        self.raft = Raft(config, storage)
        self._prev_soft_state = self.raft.soft_state()
        self._prev_hard_state = storage.initial_state()[0]
        self._max_committed_size = config.max_committed_size_per_ready

    # -- inputs -----------------------------------------------------------------------------------------

    def bootstrap(self, peers: list[ConfChange]) -> None:
        """Start a brand-new cluster: one committed CONF_CHANGE entry per peer (term 1, indexes 1..n).

        The changes are applied to the membership at once (so the member can campaign), and also
        come out as committed entries that the application applies like any other.
        """
        self.raft.bootstrap(peers)

    def tick(self) -> None:
        """Advance the logical clock by one tick (heartbeat and election timeouts count ticks)."""
        self.raft.tick()

    def campaign(self) -> None:
        """Start an election now (with a pre-vote first when enabled)."""
        self.raft.step(Message(MessageType.HUP, sender=self.raft.id))

    def propose(self, data: bytes) -> None:
        """Propose `data` for the log; raises ProposalDropped when it cannot be accepted here and now."""
        self.raft.step(Message(MessageType.PROP, sender=self.raft.id,
                               entries=(Entry(term=0, index=0, data=data),)))

    def propose_conf_change(self, cc: ConfChange) -> None:
        """Propose a membership change; raises ProposalDropped if one is still pending (thesis §4.1)."""
        self.raft.step(Message(MessageType.PROP, sender=self.raft.id,
                               entries=(Entry(term=0, index=0, type=EntryType.CONF_CHANGE,
                                              data=encode_conf_change(cc)),)))

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        """Apply a committed membership change; returns the membership that results."""
        return self.raft.apply_conf_change(cc)

    def step(self, msg: Message) -> None:
        """Feed a message received from a peer.

        Local message types raise RaftError. Responses from members we do not know are ignored,
        and so are forwarded proposals the leader cannot accept (their proposer will time out).
        """
        if msg.type in LOCAL_MESSAGES:
            raise RaftError(f"cannot step local message type {msg.type.name}")
        if msg.type in RESPONSE_MESSAGES and msg.sender not in self.raft.trk.progress:
            return
        with contextlib.suppress(ProposalDropped):
            self.raft.step(msg)

    def read_index(self, request_ctx: bytes) -> None:
        """Ask for a linearizable read point (thesis §6.4); the answer comes as a ReadState in a Ready.

        `request_ctx` must be non-empty and unique among pending reads. Raises ProposalDropped when
        no leader is known.
        """
        if not request_ctx:
            raise ValueError("read_index needs a non-empty request context")
        r = self.raft
        if r.state is not StateRole.LEADER and (r.state is not StateRole.FOLLOWER or r.lead == NO_NODE):
            raise ProposalDropped(f"{r.id} has no leader at term {r.term}")
        r.step(Message(MessageType.READ_INDEX, sender=r.id, context=request_ctx))

    def transfer_leader(self, transferee: int) -> None:
        """Ask the leader to hand leadership to `transferee` (thesis §3.10)."""
        self.raft.step(Message(MessageType.TRANSFER_LEADER, sender=transferee))

    def forget_leader(self) -> None:
        """A follower forgets its leader, so it votes for a new one without waiting out the lease."""
        self.raft.step(Message(MessageType.FORGET_LEADER, sender=self.raft.id))

    def report_unreachable(self, peer_id: int) -> None:
        """The transport failed to deliver to `peer_id`; the leader falls back to probing it."""
        self.raft.step(Message(MessageType.UNREACHABLE, sender=peer_id))

    def report_snapshot(self, peer_id: int, failed: bool) -> None:
        """How sending a snapshot to `peer_id` ended; either way the leader probes it next."""
        self.raft.step(Message(MessageType.SNAP_STATUS, sender=peer_id, reject=failed))

    # -- outputs ----------------------------------------------------------------------------------------

    def has_ready(self) -> bool:
        r = self.raft
        log = r.log
        if r.msgs or r.msgs_after_append or r.read_states or r.has_deferred_sends():
            return True
        if r.lead != self._prev_soft_state.leader_id or r.state is not self._prev_soft_state.role:
            return True
        prev = self._prev_hard_state
        if r.term != prev.term or r.vote != prev.vote or log.committed != prev.commit:
            return True
        unstable = log.unstable
        if unstable.offset_in_progress < unstable.offset + len(unstable.entries):
            return True
        if unstable.next_snapshot() is not None:
            return True
        return log.has_next_committed_entries()

    def ready(self) -> Ready:
        """Everything to persist, send and apply now; hand it back through `advance` when done."""
        r = self.raft
        r.flush_deferred_sends()
        log = r.log
        soft = r.soft_state()
        hard = r.hard_state()
        prev_hard = self._prev_hard_state
        entries = tuple(log.unstable.next_entries())
        snapshot = log.unstable.next_snapshot()
        committed = tuple(log.next_committed_entries(self._max_committed_size))
        hard_changed = hard != prev_hard
        rd = Ready(
            soft_state=soft if soft != self._prev_soft_state else None,
            hard_state=hard if hard_changed else None,
            entries=entries,
            snapshot=snapshot,
            committed_entries=committed,
            messages=tuple(r.msgs),
            messages_after_append=tuple(r.msgs_after_append),
            read_states=tuple(r.read_states),
            # Term and vote must be durable before we answer anyone (§5, Figure 2); a commit index can be
            # recomputed, so it alone needs no fsync.
            must_sync=bool(entries) or snapshot is not None
            or (hard_changed and (hard.term != prev_hard.term or hard.vote != prev_hard.vote)),
        )
        r.msgs = []
        r.msgs_after_append = []
        r.read_states = []
        log.unstable.accept_in_progress()
        if committed:
            log.accept_applying(committed[-1].index)
        self._prev_soft_state = soft
        self._prev_hard_state = hard
        return rd

    def advance(self, ready: Ready) -> None:
        """The application persisted, sent and applied `ready`."""
        log = self.raft.log
        if ready.entries:
            last = ready.entries[-1]
            log.stable_to(last.index, last.term)
        if ready.snapshot is not None:
            log.stable_snap_to(ready.snapshot.metadata.index)
        if ready.committed_entries:
            log.applied_to(ready.committed_entries[-1].index)
        elif ready.snapshot is not None:
            log.applied_to(ready.snapshot.metadata.index)

    # -- introspection ----------------------------------------------------------------------------------

    def status(self) -> Status:
        r = self.raft
        progress: dict[int, ProgressStatus] = {}
        if r.state is StateRole.LEADER:
            for member_id, pr in r.trk.items():
                progress[member_id] = ProgressStatus(
                    match=pr.match, next=pr.next, state=pr.state, recent_active=pr.recent_active,
                    is_learner=pr.is_learner, pending_snapshot=pr.pending_snapshot,
                    inflight=len(pr.inflights))
        return Status(id=r.id, term=r.term, vote=r.vote, commit=r.log.committed, applied=r.log.applied,
                      role=r.state, leader_id=r.lead, lead_transferee=r.lead_transferee,
                      conf_state=r.trk.conf_state(), progress=progress, last_index=r.log.last_index())

    @property
    def leader_id(self) -> int:
        return self.raft.lead

    @property
    def role(self) -> StateRole:
        return self.raft.state

    @property
    def hard_state(self) -> HardState:
        return self.raft.hard_state()
