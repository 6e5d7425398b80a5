"""The Raft state machine of one member: roles, elections, replication, commit, ReadIndex, conf changes.

One object holds the whole state. `step` is the single entry point for messages; it
handles terms (§5.1) and votes, then hands the message to the step function of the
current role (`_step_leader`, `_step_candidate`, `_step_follower`). Role changes go
through the transition table in roles.py. Nothing here does I/O, reads a clock or
uses global randomness: outgoing messages pile up in `msgs`, and RawNode hands them
to the application in a Ready. Messages that acknowledge our own log or vote pile up
apart, in `msgs_after_append`, because they may only leave after the Ready is persisted.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import replace

from raft.core.codec import decode_conf_change, encode_conf_change
from raft.core.config import Config
from raft.core.limits import limit_size
from raft.core.log import RaftLog
from raft.core.progress import Progress, ProgressState
from raft.core.quorum import VoteResult, vote_result
from raft.core.read_only import ReadOnly
from raft.core.roles import RoleEvent, next_role
from raft.core.storage import Storage
from raft.core.tracker import ProgressTracker
from raft.core.types import (
    NO_NODE,
    CompactedError,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ProposalDropped,
    RaftError,
    ReadState,
    Snapshot,
    SnapshotTemporarilyUnavailable,
    SoftState,
    StateRole,
    UnavailableError,
)

MT = MessageType

CAMPAIGN_TRANSFER_CONTEXT = b"CampaignTransfer"
"""The context of a VOTE forced by leadership transfer: voters answer it despite their leader lease."""

LOCAL_MESSAGES = frozenset({MT.HUP, MT.BEAT, MT.UNREACHABLE, MT.SNAP_STATUS, MT.CHECK_QUORUM,
                            MT.FORGET_LEADER})
"""Messages a member generates for itself; they never travel on the network."""

MESSAGES_AFTER_APPEND = frozenset({MT.APP_RESP, MT.VOTE_RESP, MT.PRE_VOTE_RESP})
"""Answers that vouch for our own log or vote: they may leave only once the Ready that produced them
is durable (§5 Figure 2 "respond to RPCs only after updating stable storage"; thesis §3.8). Everything
else may leave at once, in parallel with the write: a leader's appends and heartbeats (thesis §10.2.1),
requests and forwarded proposals, which promise nothing about our disk."""

RESPONSE_MESSAGES = frozenset({MT.APP_RESP, MT.VOTE_RESP, MT.HEARTBEAT_RESP, MT.UNREACHABLE,
                               MT.READ_INDEX_RESP, MT.PRE_VOTE_RESP})


class CampaignKind(enum.Enum):
    PRE_ELECTION = "pre-election"  # thesis §9.6
    ELECTION = "election"  # §5.2
    TRANSFER = "transfer"  # thesis §3.10: skips pre-vote and voters' leases


def _vote_response_type(vote_type: MessageType) -> MessageType:
    return MT.PRE_VOTE_RESP if vote_type is MT.PRE_VOTE else MT.VOTE_RESP


RESTORE_SLICE_BYTES = 4 << 20
"""Bytes of entries read at a time while replaying the applied conf changes on restart."""


class Raft:
    """The state of one member and the rules that change it."""

    def __init__(self, config: Config, storage: Storage) -> None:
        config.validate()
        self.id = config.id
        self.log = RaftLog(storage)
        self.term = 0
        self.vote = NO_NODE
        self.lead = NO_NODE
        self.state = StateRole.FOLLOWER
        self.is_learner = False
        self.trk = ProgressTracker(config.max_inflight_msgs)
        self.msgs: list[Message] = []
        self.msgs_after_append: list[Message] = []
        self.read_states: list[ReadState] = []
        self.read_only = ReadOnly()
        # ReadIndex requests that arrived before the leader committed an entry of its term (thesis §6.4).
        self.pending_read_index_messages: list[Message] = []
        self.lead_transferee = NO_NODE
        # The index of the last conf change the leader appended; a new one waits until it is applied.
        self.pending_conf_index = 0
        self.max_msg_size = config.max_size_per_msg
        self.max_inflight = config.max_inflight_msgs
        self.batch_appends = config.batch_appends
        # With batch_appends: whether a broadcast is owed (entries appended or the commit index moved),
        # the followers whose acknowledgements made room for more (True: send even an empty APP), the
        # proposals a follower holds until the Ready forwards them to the leader, and whether ReadIndex
        # requests wait for a heartbeat round (one round confirms them all, thesis §6.4).
        self._read_round_due = False
        self._bcast_due = False
        self._fill_due: dict[int, bool] = {}
        self._forward_due: list[Entry] = []
        self.pre_vote = config.pre_vote
        self.check_quorum = config.check_quorum
        self.election_timeout = config.election_tick
        self.heartbeat_timeout = config.heartbeat_tick
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = config.election_tick
        # Mixing in the id keeps members that share a seed from sharing timeouts (and splitting votes).
        seed = config.id if config.random_seed is None else f"{config.random_seed}/{config.id}"
        self.rng = random.Random(seed)
        self.logger = config.logger
        self._tick: Callable[[], None] = self._tick_election
        self._step: Callable[[Message], None] = self._step_follower

        hard_state, conf_state = storage.initial_state()
        self._restore_conf_state(conf_state)
        if hard_state != HardState():
            self._load_hard_state(hard_state)
        if config.applied > 0:
            self._restore_applied(config.applied)
        self._become_follower(self.term, NO_NODE)

    # -- helpers ----------------------------------------------------------------------------------------

    def _info(self, text: str) -> None:
        if self.logger is not None:
            self.logger(text)

    def soft_state(self) -> SoftState:
        return SoftState(leader_id=self.lead, role=self.state)

    def hard_state(self) -> HardState:
        return HardState(term=self.term, vote=self.vote, commit=self.log.committed)

    def _new_progress(self, is_learner: bool = False, recent_active: bool = False) -> Progress:
        return Progress(match=0, next_index=self.log.last_index() + 1, max_inflight=self.max_inflight,
                        is_learner=is_learner, recent_active=recent_active)

    def _added_member_progress(self, is_learner: bool) -> Progress:
        """Progress of a member just added: it counts as active (or CheckQuorum might depose us before
        it ever answers), and the first probe carries our last entry so that it is contacted at once."""
        pr = self._new_progress(is_learner=is_learner, recent_active=True)
        pr.next = max(self.log.last_index(), 1)
        return pr

    def _send(self, m: Message) -> None:
        if m.type in MESSAGES_AFTER_APPEND:
            self.msgs_after_append.append(m)
        else:
            self.msgs.append(m)

    def _message(self, type_: MessageType, to: int, *, index: int = 0, log_term: int = 0,
                 entries: tuple[Entry, ...] = (), commit: int = 0, snapshot: Snapshot | None = None,
                 reject: bool = False, reject_hint: int = 0, context: bytes = b"") -> Message:
        """A message from us, stamped with our current term."""
        return Message(type_, to=to, sender=self.id, term=self.term, log_term=log_term, index=index,
                       entries=entries, commit=commit, snapshot=snapshot, reject=reject,
                       reject_hint=reject_hint, context=context)

    def _promotable(self) -> bool:
        """Only a voter not waiting for a snapshot may campaign (learners and removed members never do)."""
        pr = self.trk.progress.get(self.id)
        return pr is not None and not pr.is_learner and not self.log.has_pending_snapshot()

    def _past_election_timeout(self) -> bool:
        return self.election_elapsed >= self.randomized_election_timeout

    def _reset_randomized_election_timeout(self) -> None:
        # §5.2: randomized timeouts make split votes rare.
        self.randomized_election_timeout = self.election_timeout + self.rng.randrange(self.election_timeout)

    def _committed_entry_in_current_term(self) -> bool:
        return self.log.zero_term_on_error(self.log.committed) == self.term

    # -- restart ----------------------------------------------------------------------------------------

    def _restore_conf_state(self, conf_state: ConfState) -> None:
        self.trk = ProgressTracker(self.max_inflight)
        for v in conf_state.voters:
            self.trk.add_voter(v, self._new_progress())
        for learner in conf_state.learners:
            self.trk.add_learner(learner, self._new_progress(is_learner=True))
        pr = self.trk.progress.get(self.id)
        self.is_learner = pr is not None and pr.is_learner

    def _load_hard_state(self, hs: HardState) -> None:
        if hs.commit > self.log.last_index():
            raise RaftError(f"{self.id} hard state commit {hs.commit} is beyond the last index "
                            f"{self.log.last_index()}")
        self.log.committed = max(hs.commit, self.log.committed)
        self.term = hs.term
        self.vote = hs.vote

    def _restore_applied(self, applied: int) -> None:
        """Resume after `applied`, re-applying the membership changes the application applied before.

        Storage only knows the ConfState of its snapshot; the conf changes after it that the
        application already applied will not come out again, so they are replayed here. Replaying
        from the first held entry is safe even if that precedes the snapshot: each change sets one
        member's role and the last change to a member wins.
        """
        if applied > self.log.last_index():
            raise RaftError(f"{self.id} applied index {applied} is beyond the last index "
                            f"{self.log.last_index()}")
        # An applied entry was committed, even if the commit index it raised never reached disk.
        self.log.commit_to(applied)
        first = self.log.first_index()
        if applied >= first:
            # In slices of bounded size: a storage that keeps old entries on disk reads them back.
            lo = first
            while lo <= applied:
                chunk = self.log.slice(lo, applied + 1, RESTORE_SLICE_BYTES)
                for e in chunk:
                    if e.type is EntryType.CONF_CHANGE:
                        self._apply_conf_change_to_tracker(decode_conf_change(e.data))
                lo += len(chunk)
            pr = self.trk.progress.get(self.id)
            self.is_learner = pr is not None and pr.is_learner
        self.log.applied_to(applied)

    def bootstrap(self, peers: list[ConfChange]) -> None:
        """Seed an empty log with one committed CONF_CHANGE entry per peer at term 1, applied at once."""
        if not peers:
            raise RaftError("bootstrap needs at least one peer")
        if self.log.last_index() != 0:
            raise RaftError("can only bootstrap an empty storage")
        self._become_follower(1, NO_NODE)
        entries = [Entry(term=1, index=i + 1, type=EntryType.CONF_CHANGE, data=encode_conf_change(cc))
                   for i, cc in enumerate(peers)]
        self.log.append(entries)
        # Every member starts from the same entries, so they are committed by construction.
        self.log.commit_to(len(entries))
        for cc in peers:
            self.apply_conf_change(cc)

    # -- role changes (see roles.py for the table) ------------------------------------------------------

    def _change_role(self, event: RoleEvent, term: int = -1, lead: int = NO_NODE) -> None:
        role = next_role(self.state, event)
        if role is None:
            raise RaftError(f"{self.id} has no transition from {self.state.value} on '{event.value}'")
        if role is StateRole.FOLLOWER:
            self._become_follower(self.term if term < 0 else term, lead)
        elif role is StateRole.PRE_CANDIDATE:
            self._become_pre_candidate()
        elif role is StateRole.CANDIDATE:
            self._become_candidate()
        else:
            self._become_leader()

    def _reset(self, term: int) -> None:
        if self.term != term:
            self.term = term
            self.vote = NO_NODE
        self.lead = NO_NODE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self._reset_randomized_election_timeout()
        self._abort_leader_transfer()
        self.trk.reset_votes()
        last = self.log.last_index()
        for member_id, pr in list(self.trk.items()):
            fresh = Progress(match=last if member_id == self.id else 0, next_index=last + 1,
                             max_inflight=self.max_inflight, is_learner=pr.is_learner)
            self.trk.progress[member_id] = fresh
        self.pending_conf_index = 0
        self.read_only = ReadOnly()
        self.pending_read_index_messages = []
        self._bcast_due = False
        self._fill_due = {}
        self._read_round_due = False

    def _become_follower(self, term: int, lead: int) -> None:
        self._step = self._step_follower
        self._reset(term)
        self._tick = self._tick_election
        self.lead = lead
        self.state = StateRole.FOLLOWER
        self._info(f"{self.id} became follower at term {self.term}")

    def _become_pre_candidate(self) -> None:
        # thesis §9.6: neither the term nor the vote changes until the pre-vote is won.
        self._step = self._step_candidate
        self.trk.reset_votes()
        self._tick = self._tick_election
        self.lead = NO_NODE
        self.state = StateRole.PRE_CANDIDATE
        self._info(f"{self.id} became pre-candidate at term {self.term}")

    def _become_candidate(self) -> None:
        self._step = self._step_candidate
        self._reset(self.term + 1)
        self._tick = self._tick_election
        self.vote = self.id
        self.state = StateRole.CANDIDATE
        self._info(f"{self.id} became candidate at term {self.term}")

    def _become_leader(self) -> None:
        self._step = self._step_leader
        self._reset(self.term)
        self._tick = self._tick_heartbeat
        self.lead = self.id
        self.state = StateRole.LEADER
        own = self.trk.progress[self.id]
        own.become_replicate()
        # The leader is always active as far as CheckQuorum is concerned.
        own.recent_active = True
        # Conservative: an unapplied conf change may hide in the uncommitted tail, so wait for all of it.
        self.pending_conf_index = self.log.last_index()
        # §5.4.2 / thesis §6.4: an entry of the new term lets the leader commit (and learn) earlier entries.
        self._append_entries([Entry(term=0, index=0)])
        self._info(f"{self.id} became leader at term {self.term}")

    # -- ticks ------------------------------------------------------------------------------------------

    def tick(self) -> None:
        self._tick()

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self._promotable() and self._past_election_timeout():
            self.election_elapsed = 0
            self.step(Message(MT.HUP, sender=self.id))

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.election_timeout:
            self.election_elapsed = 0
            if self.check_quorum:
                self.step(Message(MT.CHECK_QUORUM, sender=self.id))
            # thesis §3.10: a transfer that did not finish within an election timeout is abandoned.
            if self.state is StateRole.LEADER and self.lead_transferee != NO_NODE:
                self._info(f"{self.id} aborted leadership transfer to {self.lead_transferee}: timed out")
                self._abort_leader_transfer()
        if self.state is not StateRole.LEADER:
            return
        if self.heartbeat_elapsed >= self.heartbeat_timeout:
            self.heartbeat_elapsed = 0
            self.step(Message(MT.BEAT, sender=self.id))

    # -- elections --------------------------------------------------------------------------------------

    def _hup(self, kind: CampaignKind) -> None:
        if self.state is StateRole.LEADER:
            self._info(f"{self.id} ignoring HUP: already leader")
            return
        if not self._promotable():
            self._info(f"{self.id} is unable to campaign: not a voter, or a snapshot is pending")
            return
        if self._has_unapplied_conf_change():
            self._info(f"{self.id} cannot campaign at term {self.term}: "
                       "committed configuration changes are not applied yet")
            return
        self._info(f"{self.id} is starting a new election at term {self.term}")
        if kind is CampaignKind.PRE_ELECTION:
            self._campaign(kind, RoleEvent.PRE_VOTE_TIMEOUT)
        elif kind is CampaignKind.TRANSFER:
            self._campaign(kind, RoleEvent.TIMEOUT_NOW)
        else:
            self._campaign(kind, RoleEvent.ELECTION_TIMEOUT)

    def _forget_leader(self) -> None:
        """A follower stops counting on the leader it knows, e.g. because the operator knows it is gone.

        Without a leader its lease is void, so it grants (pre-)votes at once instead of ignoring
        them until an election timeout passes (thesis §4.2.3), and a new leader is elected
        sooner. The next message from a leader of the term restores it.
        """
        if self.state is not StateRole.FOLLOWER:
            self._info(f"{self.id} ignoring FORGET_LEADER as {self.state.value} at term {self.term}")
            return
        if self.lead == NO_NODE:
            self._info(f"{self.id} no leader at term {self.term}; ignoring FORGET_LEADER")
            return
        self._info(f"{self.id} forgetting leader {self.lead} at term {self.term}")
        self.lead = NO_NODE

    def _has_conf_change_being_applied(self) -> bool:
        """Whether a conf change handed to the application in a Ready has not been applied yet."""
        if self.log.applied >= self.log.applying:
            return False
        lo = max(self.log.applied + 1, self.log.first_index())
        return any(e.type is EntryType.CONF_CHANGE for e in self.log.slice(lo, self.log.applying + 1))

    def _has_unapplied_conf_change(self) -> bool:
        """A member with committed but unapplied conf changes may not know the current voters yet."""
        if self.log.applied >= self.log.committed:
            return False
        lo = max(self.log.applied + 1, self.log.first_index())
        return any(e.type is EntryType.CONF_CHANGE for e in self.log.slice(lo, self.log.committed + 1))

    def _campaign(self, kind: CampaignKind, event: RoleEvent) -> None:
        self._change_role(event)
        if kind is CampaignKind.PRE_ELECTION:
            # thesis §9.6: ask with the term we would use, without adopting it yet.
            vote_type, term = MT.PRE_VOTE, self.term + 1
        else:
            vote_type, term = MT.VOTE, self.term
        if self._poll(self.id, _vote_response_type(vote_type), True) is VoteResult.WON:
            # A single voter wins its own election at once.
            if kind is CampaignKind.PRE_ELECTION:
                self._campaign(CampaignKind.ELECTION, RoleEvent.PRE_VOTE_WON)
            else:
                self._change_role(RoleEvent.VOTE_WON)
            return
        context = CAMPAIGN_TRANSFER_CONTEXT if kind is CampaignKind.TRANSFER else b""
        last_index, last_term = self.log.last_index(), self.log.last_term()
        for voter in sorted(self.trk.voters):
            if voter == self.id:
                continue
            self._info(f"{self.id} [logterm: {last_term}, index: {last_index}] sent {vote_type.name} "
                       f"request to {voter} at term {self.term}")
            self._send(Message(vote_type, to=voter, sender=self.id, term=term, index=last_index,
                               log_term=last_term, context=context))

    def _poll(self, member_id: int, response_type: MessageType, granted: bool) -> VoteResult:
        if member_id != self.id:
            verdict = "" if granted else " rejection"
            self._info(f"{self.id} received {response_type.name}{verdict} from {member_id} "
                       f"at term {self.term}")
        self.trk.record_vote(member_id, granted)
        yes, no, result = self.trk.tally_votes()
        if member_id != self.id:
            self._info(f"{self.id} has received {yes} {response_type.name} votes and {no} vote rejections")
        return result

    def _handle_vote_request(self, m: Message) -> None:
        # A repeated request from the candidate we voted for, a fresh term with no vote and no
        # leader, or any pre-vote for a future term may be granted — if the log check passes.
        can_vote = (self.vote == m.sender
                    or (self.vote == NO_NODE and self.lead == NO_NODE)
                    or (m.type is MT.PRE_VOTE and m.term > self.term))
        last_index, last_term = self.log.last_index(), self.log.last_term()
        if can_vote and self.log.is_up_to_date(m.index, m.log_term):  # §5.4.1 election restriction
            self._info(f"{self.id} [logterm: {last_term}, index: {last_index}, vote: {self.vote}] cast "
                       f"{m.type.name} for {m.sender} [logterm: {m.log_term}, index: {m.index}] "
                       f"at term {self.term}")
            # The answer carries the request's term so that a pre-candidate can count it (thesis §9.6).
            self._send(Message(_vote_response_type(m.type), to=m.sender, sender=self.id, term=m.term))
            if m.type is MT.VOTE:
                self.election_elapsed = 0
                self.vote = m.sender
        else:
            self._info(f"{self.id} [logterm: {last_term}, index: {last_index}, vote: {self.vote}] rejected "
                       f"{m.type.name} from {m.sender} [logterm: {m.log_term}, index: {m.index}] "
                       f"at term {self.term}")
            self._send(Message(_vote_response_type(m.type), to=m.sender, sender=self.id, term=self.term,
                               reject=True))

    # -- the entry point --------------------------------------------------------------------------------

    def step(self, m: Message) -> None:
        """Feed one message (from the network, or a local one) to the state machine."""
        if m.term == 0:
            pass  # local message, or a forwarded PROP/READ_INDEX
        elif m.term > self.term:
            if m.type in (MT.VOTE, MT.PRE_VOTE):
                force = m.context == CAMPAIGN_TRANSFER_CONTEXT
                in_lease = (self.check_quorum and self.lead != NO_NODE
                            and self.election_elapsed < self.election_timeout)
                if not force and in_lease:
                    # thesis §6.2 / §4.2.3: while we hear from a live leader, a higher-term vote request
                    # (say from a removed or partitioned member) must not disrupt the cluster.
                    self._info(f"{self.id} [logterm: {self.log.last_term()}, index: {self.log.last_index()}, "
                               f"vote: {self.vote}] ignored {m.type.name} from {m.sender} "
                               f"[logterm: {m.log_term}, index: {m.index}] at term {self.term}: lease is not "
                               f"expired (remaining ticks: {self.election_timeout - self.election_elapsed})")
                    return
            if m.type is MT.PRE_VOTE:
                pass  # thesis §9.6: a pre-vote never changes our term
            elif m.type is MT.PRE_VOTE_RESP and not m.reject:
                pass  # granted pre-votes carry the future term we asked with
            else:
                self._info(f"{self.id} [term: {self.term}] received {m.type.name} with a higher term "
                           f"from {m.sender} [term: {m.term}]")
                lead = m.sender if m.type in (MT.APP, MT.HEARTBEAT, MT.SNAP) else NO_NODE
                self._change_role(RoleEvent.HIGHER_TERM, m.term, lead)  # §5.1
        elif m.term < self.term:
            if (self.check_quorum or self.pre_vote) and m.type in (MT.HEARTBEAT, MT.APP):
                # A stale leader (or a member whose term fell behind ours during a partition) learns our
                # term from this answer; with CheckQuorum/PreVote our own votes would not teach it.
                self._send(self._message(MT.APP_RESP, m.sender))
            elif m.type is MT.PRE_VOTE:
                self._info(f"{self.id} [term: {self.term}] rejected {m.type.name} from {m.sender} "
                           f"[term: {m.term}]: lower term")
                self._send(self._message(MT.PRE_VOTE_RESP, m.sender, reject=True))
            return  # §5.1: otherwise a stale term's message is ignored

        if m.type is MT.HUP:
            self._hup(CampaignKind.PRE_ELECTION if self.pre_vote else CampaignKind.ELECTION)
        elif m.type is MT.FORGET_LEADER:
            self._forget_leader()
        elif m.type is MT.VOTE or m.type is MT.PRE_VOTE:
            self._handle_vote_request(m)
        else:
            self._step(m)

    # -- leader -----------------------------------------------------------------------------------------

    def _step_leader(self, m: Message) -> None:
        t = m.type
        if t is MT.BEAT:
            self._bcast_heartbeat()
            return
        if t is MT.CHECK_QUORUM:
            if not self.trk.quorum_active():
                self._info(f"{self.id} stepped down to follower since quorum is not active")
                self._change_role(RoleEvent.QUORUM_LOST)
            for member_id, other in self.trk.items():
                if member_id != self.id:
                    other.recent_active = False
            return
        if t is MT.PROP:
            self._leader_propose(m)
            return
        if t is MT.READ_INDEX:
            self._leader_read_index(m)
            return

        pr = self.trk.progress.get(m.sender)
        if pr is None:
            return
        if t is MT.APP_RESP:
            self._handle_append_response(m, pr)
        elif t is MT.HEARTBEAT_RESP:
            self._handle_heartbeat_response(m, pr)
        elif t is MT.SNAP_STATUS:
            if pr.state is not ProgressState.SNAPSHOT:
                return
            if m.reject:
                self._info(f"{self.id} snapshot to {m.sender} failed; will probe again")
                pr.pending_snapshot = 0
            pr.become_probe()
            # After a snapshot wait for the follower's APP_RESP (or a heartbeat) before the next APP.
            pr.probe_sent = True
        elif t is MT.UNREACHABLE:
            # The last APP was probably lost: fall back to probing.
            if pr.state is ProgressState.REPLICATE:
                pr.become_probe()
        elif t is MT.TRANSFER_LEADER:
            self._leader_transfer(m.sender, pr)

    def _leader_propose(self, m: Message) -> None:
        if not m.entries:
            raise RaftError(f"{self.id} stepped an empty proposal")
        if self.id not in self.trk.progress:
            raise ProposalDropped(f"{self.id} is no longer a member")
        if self.lead_transferee != NO_NODE:
            raise ProposalDropped(f"leadership transfer to {self.lead_transferee} is in progress")
        local = m.sender in (self.id, NO_NODE)
        entries = list(m.entries)
        for i, e in enumerate(entries):
            if e.type is not EntryType.CONF_CHANGE:
                continue
            refusal = self._conf_change_refusal(e)
            if refusal is None:
                self.pending_conf_index = self.log.last_index() + i + 1
                continue
            if local:
                raise ProposalDropped(refusal)
            # A forwarded change is refused by turning it into a no-op entry; its proposer times out.
            self._info(f"{self.id} ignoring conf change proposed by {m.sender}: {refusal}")
            entries[i] = Entry(term=0, index=0)
        self._append_entries(entries)
        if self.batch_appends:
            self._bcast_due = True
        else:
            self._bcast_append()

    def _conf_change_refusal(self, e: Entry) -> str | None:
        """Why a proposed conf change cannot be accepted now, or None."""
        if self.pending_conf_index > self.log.applied:
            # thesis §4.1: one membership change at a time; the previous one must be applied first.
            return (f"possible unapplied conf change at index {self.pending_conf_index} "
                    f"(applied to {self.log.applied})")
        cc = decode_conf_change(e.data)
        if cc.type is ConfChangeType.REMOVE_NODE and self.trk.voters == {cc.node_id}:
            return f"removing {cc.node_id} would leave no voters"
        return None

    def _append_entries(self, entries: list[Entry]) -> None:
        """The leader appends new entries of its term to its own log (§5.3)."""
        last = self.log.last_index()
        stamped = [Entry(term=self.term, index=last + 1 + i, type=e.type, data=e.data)
                   for i, e in enumerate(entries)]
        last = self.log.append(stamped)
        own = self.trk.progress.get(self.id)
        if own is not None:
            own.maybe_update(last)
        self._maybe_commit()

    def _maybe_commit(self) -> bool:
        """Advance the commit index to what a quorum has, if that entry is of this term (§5.4.2)."""
        quorum_index = self.trk.committed()
        if not self.log.maybe_commit(quorum_index, self.term):
            if quorum_index > self.log.committed and self.logger is not None:
                self._info(f"{self.id} does not commit index {quorum_index} by counting replicas: its term "
                           f"{self.log.zero_term_on_error(quorum_index)} is not the current term {self.term} "
                           "(§5.4.2)")
            return False
        if self.pending_read_index_messages and self._committed_entry_in_current_term():
            pending, self.pending_read_index_messages = self.pending_read_index_messages, []
            for req in pending:
                self._confirm_read_index(req)
        return True

    def _bcast_append(self) -> None:
        for member_id in self.trk.ids():
            if member_id != self.id:
                self._maybe_send_append(member_id, True)

    def has_deferred_sends(self) -> bool:
        """With batch_appends: appends, a ReadIndex heartbeat round or forwarded proposals wait for the next Ready."""
        return self._bcast_due or bool(self._fill_due) or bool(self._forward_due) or self._read_round_due

    def flush_deferred_sends(self) -> None:
        """With batch_appends, as a Ready is taken: send what the steps since the last one deferred. A
        leader owes each follower what a broadcast would have sent (all of it now, as far as flow control
        allows); a follower forwards the proposals it holds, in one PROP, to the leader it knows now. A
        member that knows no leader, or has become one, drops them: their proposers time out, as with
        any forward lost on the way."""
        bcast, fill, forward = self._bcast_due, self._fill_due, self._forward_due
        self._bcast_due, self._fill_due, self._forward_due = False, {}, []
        while forward and self.state is StateRole.FOLLOWER and self.lead != NO_NODE:
            # PROPs of at most max_size_per_msg (one entry at least), so many large proposals never make
            # one message the transport cannot carry; a local message's term (0), as a single forward has.
            part = limit_size(forward, self.max_msg_size)
            self._send(Message(MT.PROP, to=self.lead, sender=self.id, entries=tuple(part)))
            forward = forward[len(part):]
        if self._read_round_due:
            self._read_round_due = False
            if self.state is StateRole.LEADER:
                self._bcast_heartbeat_with_context(self.read_only.last_pending_request_ctx())
        if self.state is not StateRole.LEADER or not (bcast or fill):
            return
        for member_id in self.trk.ids():
            if member_id == self.id or not (bcast or member_id in fill):
                continue
            if self._maybe_send_append(member_id, bcast or fill[member_id]):
                while self._maybe_send_append(member_id, False):
                    pass

    def _maybe_send_append(self, to: int, send_if_empty: bool) -> bool:
        """Send the entries `to` lacks (or a probe, or a snapshot); False when nothing was sent."""
        pr = self.trk.progress[to]
        if pr.is_paused():
            return False
        prev_index = pr.next - 1
        try:
            prev_term = self.log.term(prev_index)
            entries = self.log.entries(pr.next, self.max_msg_size)
        except (CompactedError, UnavailableError):
            if not send_if_empty:
                return False
            return self._maybe_send_snapshot(to, pr)
        if not entries and not send_if_empty:
            return False
        if entries:
            if pr.state is ProgressState.REPLICATE:
                last = entries[-1].index
                pr.optimistic_update(last)
                pr.inflights.add(last)
            elif pr.state is ProgressState.PROBE:
                pr.probe_sent = True
        self._send(self._message(MT.APP, to, index=prev_index, log_term=prev_term, entries=tuple(entries),
                                 commit=self.log.committed))
        return True

    def _maybe_send_snapshot(self, to: int, pr: Progress) -> bool:
        """§7: the entries `to` needs are compacted away, so send the snapshot instead."""
        if not pr.recent_active:
            self._info(f"{self.id} not sending a snapshot to {to}: it is not recently active")
            return False
        try:
            snapshot = self.log.snapshot()
        except SnapshotTemporarilyUnavailable:
            self._info(f"{self.id} failed to send a snapshot to {to}: temporarily unavailable")
            return False
        if snapshot.is_empty:
            raise RaftError(f"{self.id} needs a non-empty snapshot to catch up {to}")
        meta = snapshot.metadata
        self._info(f"{self.id} [firstindex: {self.log.first_index()}, commit: {self.log.committed}] sent "
                   f"snapshot [index: {meta.index}, term: {meta.term}] to {to} [{pr!r}]")
        pr.become_snapshot(meta.index)
        self._send(self._message(MT.SNAP, to, snapshot=snapshot))
        return True

    def _bcast_heartbeat(self) -> None:
        self._bcast_heartbeat_with_context(self.read_only.last_pending_request_ctx())

    def _bcast_heartbeat_with_context(self, context: bytes) -> None:
        for member_id in self.trk.ids():
            if member_id != self.id:
                pr = self.trk.progress[member_id]
                # A follower may lack entries up to our commit index; it must not commit past its match.
                commit = min(pr.match, self.log.committed)
                self._send(self._message(MT.HEARTBEAT, member_id, commit=commit, context=context))

    def _handle_append_response(self, m: Message, pr: Progress) -> None:
        pr.recent_active = True
        if m.reject:
            # Fast backtracking: skip every entry of ours that cannot match the follower's hint.
            next_probe = m.reject_hint
            if m.log_term > 0:
                next_probe = self.log.find_conflict_by_term(m.reject_hint, m.log_term)
            self._info(f"{self.id} received APP_RESP rejection (hint: index {m.reject_hint}, term "
                       f"{m.log_term}) from {m.sender} for index {m.index}; probing from {next_probe + 1}")
            if pr.maybe_decrease_to(m.index, next_probe):
                if pr.state is ProgressState.REPLICATE:
                    pr.become_probe()
                self._maybe_send_append(m.sender, True)
            return
        was_paused = pr.is_paused()
        if not pr.maybe_update(m.index):
            return
        if pr.state is ProgressState.PROBE:
            pr.become_replicate()
        elif pr.state is ProgressState.SNAPSHOT and pr.match >= pr.pending_snapshot:
            self._info(f"{self.id} snapshot to {m.sender} is installed; "
                       f"resuming replication at {pr.match + 1}")
            pr.become_probe()
            pr.become_replicate()
        elif pr.state is ProgressState.REPLICATE:
            pr.inflights.free_le(m.index)
        if self.batch_appends:
            self._bcast_due = self._maybe_commit() or self._bcast_due
            self._fill_due[m.sender] = self._fill_due.get(m.sender, False) or was_paused
        elif self._maybe_commit():
            self._bcast_append()
        elif was_paused:
            self._maybe_send_append(m.sender, True)
        # In REPLICATE, keep the pipe full while the inflight window allows.
        while not self.batch_appends and self._maybe_send_append(m.sender, False):
            pass
        if m.sender == self.lead_transferee and pr.match == self.log.last_index():
            self._info(f"{self.id} sent TIMEOUT_NOW to {m.sender} after it caught up")
            self._send(self._message(MT.TIMEOUT_NOW, m.sender))

    def _handle_heartbeat_response(self, m: Message, pr: Progress) -> None:
        pr.recent_active = True
        pr.probe_sent = False
        if pr.state is ProgressState.REPLICATE and pr.inflights.full():
            pr.inflights.free_first_one()
        if pr.match < self.log.last_index():
            self._maybe_send_append(m.sender, True)
        if not m.context:
            return
        acks = self.read_only.recv_ack(m.sender, m.context)
        if acks is None or vote_result(self.trk.voters, acks) is not VoteResult.WON:
            return
        # thesis §6.4: a quorum answered this round, so we were still leader when these reads arrived.
        for status in self.read_only.advance(m.context):
            self._answer_read_index(status.request, status.index)

    def _leader_read_index(self, m: Message) -> None:
        if self.trk.is_singleton():
            # A lone voter is the quorum: its commit index is safe to read at once.
            self._answer_read_index(m, self.log.committed)
        elif not self._committed_entry_in_current_term():
            # thesis §6.4: until an entry of this term commits, our commit index may lag the true one.
            self.pending_read_index_messages.append(m)
        else:
            self._confirm_read_index(m)

    def _confirm_read_index(self, m: Message) -> None:
        """Record the commit index for this read and confirm leadership with a heartbeat round."""
        self.read_only.add_request(self.log.committed, m)
        self.read_only.recv_ack(self.id, m.context)
        if self.batch_appends:
            self._read_round_due = True  # the Ready's round carries the newest context, confirming this one too
        else:
            self._bcast_heartbeat_with_context(m.context)

    def _answer_read_index(self, request: Message, index: int) -> None:
        if request.sender in (NO_NODE, self.id):
            self.read_states.append(ReadState(index=index, request_ctx=request.context))
        else:
            self._send(self._message(MT.READ_INDEX_RESP, request.sender, index=index,
                                     context=request.context))

    def _leader_transfer(self, transferee: int, pr: Progress) -> None:
        if pr.is_learner:
            self._info(f"{self.id} ignored transferring leadership to learner {transferee}")
            return
        if self.lead_transferee != NO_NODE:
            if self.lead_transferee == transferee:
                self._info(f"{self.id} [term {self.term}] transfer of leadership to {transferee} is in "
                           "progress; ignoring the repeated request")
                return
            self._info(f"{self.id} [term {self.term}] abort previous transfer of leadership to "
                       f"{self.lead_transferee}")
            self._abort_leader_transfer()
        if transferee == self.id:
            self._info(f"{self.id} is already leader; ignoring transfer to itself")
            return
        self._info(f"{self.id} [term {self.term}] starts to transfer leadership to {transferee}")
        # thesis §3.10: the transfer must finish within an election timeout, counted from now.
        self.election_elapsed = 0
        self.lead_transferee = transferee
        if pr.match == self.log.last_index():
            self._info(f"{self.id} sends TIMEOUT_NOW to {transferee} immediately as it already has an "
                       "up-to-date log")
            self._send(self._message(MT.TIMEOUT_NOW, transferee))
        else:
            self._maybe_send_append(transferee, True)

    def _abort_leader_transfer(self) -> None:
        self.lead_transferee = NO_NODE

    # -- candidate and pre-candidate ----------------------------------------------------------------------

    def _step_candidate(self, m: Message) -> None:
        t = m.type
        vote_response = MT.PRE_VOTE_RESP if self.state is StateRole.PRE_CANDIDATE else MT.VOTE_RESP
        if t is MT.PROP:
            raise ProposalDropped(f"{self.id} is campaigning at term {self.term}: no leader")
        if t in (MT.APP, MT.HEARTBEAT, MT.SNAP):
            # §5.2: a leader of our term exists, so the election is lost.
            self._change_role(RoleEvent.HEARD_FROM_LEADER, m.term, m.sender)
            self._handle_from_leader(m)
        elif t is vote_response:
            result = self._poll(m.sender, t, not m.reject)
            if result is VoteResult.WON:
                if self.state is StateRole.PRE_CANDIDATE:
                    self._campaign(CampaignKind.ELECTION, RoleEvent.PRE_VOTE_WON)
                else:
                    self._change_role(RoleEvent.VOTE_WON)
                    self._bcast_append()
            elif result is VoteResult.LOST:
                self._change_role(RoleEvent.VOTE_LOST, self.term)
        elif t is MT.TIMEOUT_NOW:
            self._info(f"{self.id} [term {self.term} state {self.state.value}] ignored TIMEOUT_NOW "
                       f"from {m.sender}")

    # -- follower ---------------------------------------------------------------------------------------

    def _step_follower(self, m: Message) -> None:
        t = m.type
        if t is MT.PROP:
            if self.lead == NO_NODE:
                raise ProposalDropped(f"{self.id} has no leader at term {self.term}")
            if self.batch_appends:
                self._forward_due.extend(m.entries)
            else:
                self._send(replace(m, to=self.lead))
        elif t in (MT.APP, MT.HEARTBEAT, MT.SNAP):
            self.election_elapsed = 0
            self.lead = m.sender
            self._handle_from_leader(m)
        elif t is MT.TRANSFER_LEADER:
            if self.lead == NO_NODE:
                self._info(f"{self.id} no leader at term {self.term}; dropping leader transfer")
                return
            self._send(replace(m, to=self.lead))
        elif t is MT.TIMEOUT_NOW:
            self._info(f"{self.id} [term {self.term}] received TIMEOUT_NOW from {m.sender} and starts an "
                       "election to get leadership")
            # thesis §3.10: campaign at once, skipping pre-vote, so the transfer is quick.
            self._hup(CampaignKind.TRANSFER)
        elif t is MT.READ_INDEX:
            if self.lead == NO_NODE:
                self._info(f"{self.id} no leader at term {self.term}; dropping ReadIndex")
                return
            self._send(replace(m, to=self.lead))
        elif t is MT.READ_INDEX_RESP:
            self.read_states.append(ReadState(index=m.index, request_ctx=m.context))

    def _handle_from_leader(self, m: Message) -> None:
        if m.type is MT.APP:
            self._handle_append_entries(m)
        elif m.type is MT.HEARTBEAT:
            self._handle_heartbeat(m)
        else:
            self._handle_snapshot(m)

    def _handle_append_entries(self, m: Message) -> None:
        if m.index < self.log.committed:
            # Everything up to our commit index matches the leader's log already (§5.4 Log Matching).
            self._send(self._message(MT.APP_RESP, m.sender, index=self.log.committed))
            return
        last_new = self.log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if last_new is not None:
            self._send(self._message(MT.APP_RESP, m.sender, index=last_new))
            return
        # §5.3 consistency check failed. Hint the leader where our logs may agree: the last index at
        # or below its probe whose term is not newer than the term it sent.
        hint_index = min(m.index, self.log.last_index())
        hint_index = self.log.find_conflict_by_term(hint_index, m.log_term)
        hint_term = self.log.zero_term_on_error(hint_index)
        self._info(f"{self.id} [logterm: {self.log.zero_term_on_error(m.index)}, index: {m.index}] rejected "
                   f"APP [logterm: {m.log_term}, index: {m.index}] from {m.sender}")
        self._send(self._message(MT.APP_RESP, m.sender, index=m.index, reject=True, reject_hint=hint_index,
                                 log_term=hint_term))

    def _handle_heartbeat(self, m: Message) -> None:
        self.log.commit_to(m.commit)
        self._send(self._message(MT.HEARTBEAT_RESP, m.sender, context=m.context))

    def _handle_snapshot(self, m: Message) -> None:
        if m.snapshot is None:
            raise RaftError(f"{self.id} received SNAP without a snapshot from {m.sender}")
        if self._restore(m.snapshot):
            self._send(self._message(MT.APP_RESP, m.sender, index=self.log.last_index()))
        else:
            self._send(self._message(MT.APP_RESP, m.sender, index=self.log.committed))

    def _restore(self, snapshot: Snapshot) -> bool:
        """§7 InstallSnapshot: replace our log by `snapshot` unless we already have what it covers."""
        meta = snapshot.metadata
        if meta.index <= self.log.committed:
            return False
        if self.state is not StateRole.FOLLOWER:
            return False
        if self._has_conf_change_being_applied():
            # The application is still applying conf changes handed out in a Ready; applied after
            # the snapshot's membership, they would corrupt it (thesis §4.1: a change takes effect
            # when applied, in log order). The leader sends the snapshot again later.
            self._info(f"{self.id} ignoring snapshot [index: {meta.index}, term: {meta.term}]: conf "
                       f"changes up to {self.log.applying} are still being applied")
            return False
        cs = meta.conf_state
        if self.id not in cs.voters and self.id not in cs.learners:
            self._info(f"{self.id} ignoring snapshot [index: {meta.index}, term: {meta.term}]: "
                       "not a member of its configuration")
            return False
        if self.log.match_term(meta.index, meta.term):
            # Our log already contains the snapshot's last entry: just commit up to it.
            self._info(f"{self.id} [commit: {self.log.committed}] fast-forwarded commit to snapshot "
                       f"[index: {meta.index}, term: {meta.term}]")
            self.log.commit_to(meta.index)
            return False
        self._info(f"{self.id} [commit: {self.log.committed}, lastindex: {self.log.last_index()}, lastterm: "
                   f"{self.log.last_term()}] restored snapshot [index: {meta.index}, term: {meta.term}]")
        self.log.restore(snapshot)
        self._restore_conf_state(cs)
        return True

    # -- membership -------------------------------------------------------------------------------------

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        """Apply a committed membership change (thesis §4.1: takes effect when applied)."""
        self._apply_conf_change_to_tracker(cc)
        cs = self.trk.conf_state()
        learners = f" learners=({','.join(map(str, cs.learners))})" if cs.learners else ""
        self._info(f"{self.id} switched to configuration voters=({','.join(map(str, cs.voters))}){learners}")
        return self._switch_to_config(cs)

    def _apply_conf_change_to_tracker(self, cc: ConfChange) -> None:
        trk, node = self.trk, cc.node_id
        if node == NO_NODE:
            return
        if cc.type is ConfChangeType.ADD_NODE:
            if node in trk.learners:
                trk.add_voter(node, trk.progress[node])  # promotion keeps the learner's progress
            elif node not in trk.voters:
                trk.add_voter(node, self._added_member_progress(is_learner=False))
        elif cc.type is ConfChangeType.ADD_LEARNER_NODE:
            if node in trk.voters:
                self._info(f"{self.id} ignored turning voter {node} into a learner: "
                           "demotion is not supported")
            elif node not in trk.learners:
                trk.add_learner(node, self._added_member_progress(is_learner=True))
        elif cc.type is ConfChangeType.REMOVE_NODE:
            trk.remove(node)
        # UPDATE_NODE changes only the application's member record (its context), not Raft's view.

    def _switch_to_config(self, cs: ConfState) -> ConfState:
        own = self.trk.progress.get(self.id)
        self.is_learner = own is not None and own.is_learner
        if self.state is not StateRole.LEADER:
            return cs
        if own is None or self.is_learner:
            self._step_down_after_removal()
            return cs
        if not cs.voters:
            return cs
        # The quorum changed: the commit index may move, and new members need entries.
        if self._maybe_commit():
            self._bcast_append()
        else:
            for member_id in self.trk.ids():
                if member_id != self.id:
                    self._maybe_send_append(member_id, False)
        if self.lead_transferee != NO_NODE and self.lead_transferee not in self.trk.voters:
            self._abort_leader_transfer()
        return cs

    def _step_down_after_removal(self) -> None:
        """thesis §4.2.2: a leader removed from the cluster steps down once its removal is applied.

        To keep the gap without a leader short it asks the most up-to-date remaining voter to
        campaign at once (as in leadership transfer) when one has the whole log.
        """
        last = self.log.last_index()
        successors = [v for v in sorted(self.trk.voters) if self.trk.progress[v].match == last]
        if successors:
            self._info(f"{self.id} was removed; sent TIMEOUT_NOW to {successors[0]} to take over")
            self._send(self._message(MT.TIMEOUT_NOW, successors[0]))
        self._info(f"{self.id} was removed from the configuration and steps down")
        self._change_role(RoleEvent.REMOVED)
