"""Raft's safety properties (§5.2 Figure 3), checked incrementally as a simulated run unfolds.

The checker watches what members persist, commit, apply and read, and remembers the
whole history, so "at most one leader per term" holds across crashes and restarts too.
A broken property raises `Violation` at the step that broke it.
"""

from __future__ import annotations

from dataclasses import dataclass

from raft.core.storage import Storage
from raft.core.types import (
    NO_NODE,
    CompactedError,
    ConfState,
    Entry,
    EntryType,
    HardState,
    SnapshotMetadata,
    UnavailableError,
)
from raft.sim.app import AppliedEntry, AppState


class Violation(Exception):
    """A safety or liveness property failed; `rule` names it, the message says how."""

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(f"{rule}: {detail}")
        self.rule = rule
        self.detail = detail


@dataclass(frozen=True, slots=True)
class _Persisted:
    type: EntryType
    data: bytes
    prev_term: int | None  # term of index-1 in the log that held this entry; None if compacted


@dataclass(slots=True)
class _Committed:
    term: int
    # An upper bound on the term in which the entry was committed: the smallest current
    # term of any member when it learned of the commit. Leaders of later terms must hold it.
    commit_term: int


@dataclass(slots=True)
class ReadRequest:
    """A client's ReadIndex read (thesis §6.4) and what it observed."""

    ctx: bytes
    member: int
    incarnation: int
    started_tick: int
    # The highest index any member had applied (so acknowledged to some client) when the
    # read began: a linearizable read must observe at least that much.
    min_index: int
    index: int | None = None
    result_applied: int | None = None


def term_at(storage: Storage, index: int) -> int | None:
    """The term of `index` in a member's log, or None when it was compacted away or is beyond the log."""
    if index > storage.last_index():
        return None
    try:
        return storage.term(index)
    except (CompactedError, UnavailableError):
        return None


class SafetyChecker:
    """Holds the history needed to check Raft's safety properties as events arrive."""

    def __init__(self) -> None:
        self.leader_of_term: dict[int, int] = {}
        self._persisted: dict[tuple[int, int], _Persisted] = {}
        self.committed: dict[int, _Committed] = {}
        self.applied_at: dict[int, AppliedEntry] = {}
        self._conf_at: dict[int, ConfState] = {}
        self.max_applied = 0
        self.checks = 0

    # -- election safety (§5.2) ----------------------------------------------------------------

    def on_leader(self, member: int, term: int, storage: Storage) -> None:
        """`member` is leader in `term`; its log is `storage` (everything it holds was persisted)."""
        self.checks += 1
        other = self.leader_of_term.setdefault(term, member)
        if other != member:
            raise Violation("election safety", f"term {term} has two leaders: {other} and {member}")
        # §5.4 leader completeness: every entry committed in an earlier term is in this leader's log.
        for index, rec in self.committed.items():
            if rec.commit_term < term:
                self._require_in_log(member, term, storage, index, rec)

    def _require_in_log(self, member: int, term: int, storage: Storage, index: int, rec: _Committed) -> None:
        if index <= storage.first_index() - 1:
            return  # inside the leader's snapshot, which only ever holds committed state
        have = term_at(storage, index)
        if have != rec.term:
            raise Violation(
                "leader completeness",
                f"leader {member} of term {term} lacks committed entry {index}@{rec.term} "
                f"(committed by term {rec.commit_term}); its log has term {have} there",
            )

    def on_hard_state(self, member: int, prev: HardState, new: HardState) -> None:
        """What a member persists about terms and votes only moves forward (Figure 2)."""
        self.checks += 1
        if new.term < prev.term:
            raise Violation("persistent state",
                            f"member {member} term went back from {prev.term} to {new.term}")
        if new.term == prev.term and prev.vote != NO_NODE and new.vote != prev.vote:
            raise Violation("election safety",
                            f"member {member} voted for {prev.vote} and then {new.vote} in term {new.term}")
        if new.commit < prev.commit:
            raise Violation("persistent state",
                            f"member {member} commit index went back from {prev.commit} to {new.commit}")

    # -- log matching (§5.3) -------------------------------------------------------------------

    def on_persisted(self, member: int, entries: tuple[Entry, ...], storage: Storage) -> None:
        """`member` just made `entries` durable; `storage` already holds them."""
        if not entries:
            return
        self.checks += 1
        prev_term = term_at(storage, entries[0].index - 1) if entries[0].index > 1 else 0
        for e in entries:
            seen = self._persisted.get((e.index, e.term))
            if seen is None:
                self._persisted[(e.index, e.term)] = _Persisted(e.type, e.data, prev_term)
            else:
                if seen.type != e.type or seen.data != e.data:
                    raise Violation(
                        "log matching",
                        f"member {member} holds {e.index}@{e.term} = {e.data!r}, another log holds "
                        f"{seen.data!r} at the same index and term",
                    )
                # Same (index, term) must mean the same preceding entry, hence by induction the same prefix.
                if seen.prev_term is not None and prev_term is not None and seen.prev_term != prev_term:
                    raise Violation(
                        "log matching",
                        f"entry {e.index}@{e.term} follows term {prev_term} in member {member}'s log "
                        f"but term {seen.prev_term} in another log",
                    )
                if seen.prev_term is None and prev_term is not None:
                    self._persisted[(e.index, e.term)] = _Persisted(e.type, e.data, prev_term)
            prev_term = e.term

    def check_logs_match(self, storages: dict[int, Storage]) -> None:
        """A full pairwise comparison of current logs: same (index, term) means same entries before it."""
        logs: dict[int, dict[int, Entry]] = {}
        for member, storage in storages.items():
            lo, hi = storage.first_index(), storage.last_index()
            if hi >= lo:
                logs[member] = {e.index: e for e in storage.entries(lo, hi + 1)}
        ids = sorted(logs)
        for i, a in enumerate(ids):
            for b in ids[i + 1:]:
                la, lb = logs[a], logs[b]
                # Walk down from the highest shared (index, term); below it everything must agree.
                shared = sorted(set(la) & set(lb), reverse=True)
                matched = False
                for index in shared:
                    ea, eb = la[index], lb[index]
                    if ea.term == eb.term:
                        matched = True
                    if matched and ea != eb:
                        raise Violation(
                            "log matching",
                            f"members {a} and {b} share a later (index, term) but differ at {index}: "
                            f"{ea.index}@{ea.term} vs {eb.index}@{eb.term}",
                        )

    # -- commitment and state-machine safety (§5.4.3) -----------------------------------------

    def on_committed(self, member: int, member_term: int, entries: tuple[Entry, ...],
                     leaders: list[tuple[int, int, Storage]]) -> None:
        """`member` (now in `member_term`) was told `entries` are committed; `leaders` are the live ones."""
        for e in entries:
            self._record_commit(member, e.index, e.term, member_term, leaders)

    def on_snapshot_persisted(self, member: int, member_term: int, meta: SnapshotMetadata,
                              leaders: list[tuple[int, int, Storage]]) -> None:
        self._record_commit(member, meta.index, meta.term, member_term, leaders)

    def _record_commit(self, member: int, index: int, term: int, member_term: int,
                       leaders: list[tuple[int, int, Storage]]) -> None:
        self.checks += 1
        rec = self.committed.get(index)
        if rec is None:
            rec = _Committed(term, member_term)
            self.committed[index] = rec
            # A leader elected in a later term than this commit must already hold the entry.
            for leader, leader_term, storage in leaders:
                if leader_term > member_term:
                    self._require_in_log(leader, leader_term, storage, index, rec)
        elif rec.term != term:
            raise Violation(
                "state machine safety",
                f"member {member} sees {index}@{term} committed, but {index}@{rec.term} was committed before",
            )
        elif member_term < rec.commit_term:
            rec.commit_term = member_term

    def on_applied(self, member: int, state: AppState, entry: AppliedEntry) -> None:
        """`member` applies `entry` on top of `state` (not yet including it)."""
        self.checks += 1
        if entry.index != state.applied_index + 1:
            raise Violation(
                "state machine safety",
                f"member {member} applies index {entry.index} right after {state.applied_index}",
            )
        self._agree(member, entry)

    def on_conf_applied(self, member: int, index: int, conf_state: ConfState) -> None:
        """Every member that applies the conf change at `index` must arrive at the same membership."""
        self.checks += 1
        seen = self._conf_at.setdefault(index, conf_state)
        if seen != conf_state:
            raise Violation(
                "state machine safety",
                f"member {member} has membership {conf_state} after the conf change at {index}; "
                f"another member had {seen}",
            )

    def on_restored(self, member: int, state: AppState) -> None:
        """`member` replaced its state with a snapshot's: every entry in it must agree with history."""
        self.checks += 1
        for entry in state.applied:
            self._agree(member, entry)

    def _agree(self, member: int, entry: AppliedEntry) -> None:
        seen = self.applied_at.get(entry.index)
        if seen is None:
            self.applied_at[entry.index] = entry
            if entry.index > self.max_applied:
                self.max_applied = entry.index
        elif seen != entry:
            raise Violation(
                "state machine safety",
                f"member {member} applies {entry.data!r} ({entry.type.name}) at index {entry.index}, "
                f"another member applied {seen.data!r} ({seen.type.name}) there",
            )

    # -- linearizable reads (thesis §6.4) ------------------------------------------------------

    def on_read_index(self, read: ReadRequest, index: int) -> None:
        self.checks += 1
        if index < read.min_index:
            raise Violation(
                "read linearizability",
                f"read {read.ctx!r} at member {read.member} got read index {index}, but index "
                f"{read.min_index} was applied before the read began (tick {read.started_tick})",
            )

    def on_read_served(self, read: ReadRequest, state: AppState) -> None:
        """The read is served from `state`: the applied prefix it returns must cover min_index."""
        self.checks += 1
        needed = max(read.min_index, read.index or 0)
        if state.applied_index < needed:
            raise Violation(
                "read linearizability",
                f"read {read.ctx!r} at member {read.member} served at applied index {state.applied_index}, "
                f"below read index {read.index} / required {read.min_index}",
            )
