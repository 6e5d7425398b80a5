"""Which Raft rule each narrated step follows, and where the paper or thesis states it.

The core cites its sections in comments and in the role table (raft/core/roles.py); the
step-through viewer needs the same citations as data, one per kind of trace line. Each
row is a pattern over the narration (raft/sim/cluster.py's `note` lines), the rule in a
sentence, and its section: "§n" is the Raft paper (Ongaro & Ousterhout 2014), "thesis §n"
is Ongaro's dissertation (2014). Lines no row matches are the script's own commentary or
faults injected by the simulator, which no Raft rule governs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rule:
    """A Raft rule a step follows: what it says, and its section."""

    pattern: re.Pattern[str]
    rule: str
    section: str


def _r(pattern: str, rule: str, section: str) -> Rule:
    return Rule(re.compile(pattern), rule, section)


RULES: tuple[Rule, ...] = (
    _r(r"becomes candidate", "election timeout (or a campaign order): a follower increments its term, "
       "votes for itself and asks every voter for its vote", "§5.2"),
    _r(r"becomes pre-candidate", "PreVote: before disturbing the cluster, ask whether a quorum would vote "
       "for us in the next term; term and vote do not change", "thesis §9.6"),
    _r(r"becomes LEADER", "votes from a majority of voters make a candidate leader; it appends an empty "
       "entry of its term so earlier entries can commit", "§5.2, §5.4.2"),
    _r(r"becomes follower", "a member that sees a higher term, or hears from the leader of its term, "
       "becomes (or stays) a follower", "§5.1, §5.2"),
    _r(r"would vote for .*pre-vote", "a pre-vote is granted when the candidate's log is at least as "
       "up to date and no leader was heard from recently", "thesis §9.6"),
    _r(r"refuses its vote", "a vote is refused when the voter already voted this term or the candidate's "
       "log is less up to date (election restriction)", "§5.2, §5.4.1"),
    _r(r"votes for", "each member votes for at most one candidate per term, first come first served, "
       "and only if the candidate's log is at least as up to date", "§5.2, §5.4.1"),
    _r(r" term \d+ -> \d+", "a member that sees a higher term adopts it (and forgets its vote) before "
       "anything else", "§5.1"),
    _r(r"commit index \d+ -> \d+", "the leader commits an entry of its own term once a majority stores "
       "it (earlier entries commit with it); followers learn the commit index from the leader",
       "§5.3, §5.4.2"),
    _r(r"loses its unsynced commit", "the commit index is not required to be durable: it is relearned "
       "from the leader after a restart", "§5 Figure 2"),
    _r(r"sends snapshot", "the entries a follower needs were compacted away, so the leader sends its "
       "snapshot instead (InstallSnapshot)", "§7"),
    _r(r"installs snapshot|restores snapshot|snapshot \d+@\d+ installed", "a follower replaces its log "
       "by the leader's snapshot unless it already holds what the snapshot covers", "§7"),
    _r(r"snapshots at applied index", "each member snapshots its applied state and discards the log "
       "entries the snapshot covers", "§7"),
    _r(r"transport: snapshot", "the transport reports how a snapshot send went, so the leader probes "
       "again or waits", "§7 (etcd's flow control)"),
    _r(r"-> n\d+: append", "the leader sends AppendEntries with the index and term of the entry before "
       "them; the follower accepts only if its log has that entry (consistency check)", "§5.3"),
    _r(r"appends ", "entries are persisted before the member acknowledges them", "§5 Figure 2, thesis §3.8"),
    _r(r"applies ", "committed entries are applied to the state machine in log order", "§5.3"),
    _r(r"adds voter|adds learner|removes n\d+|updates n\d+", "a membership change takes effect on a member "
       "when it applies the entry; one change at a time", "thesis §4.1"),
    _r(r"proposes (ADD|REMOVE|UPDATE)", "membership changes go through the log, one at a time",
       "thesis §4.1"),
    _r(r"shuts down: it was removed", "a removed member stops once its removal is committed and applied",
       "thesis §4.2.2"),
    _r(r"starts empty as a new", "a new member starts with an empty log and catches up from the leader "
       "before it counts", "thesis §4.2.1"),
    _r(r"tells n\d+ to campaign now", "leader transfer: once the target's log is up to date, the leader "
       "tells it to campaign at once (TimeoutNow)", "thesis §3.10"),
    _r(r"hand leadership", "leader transfer: the leader stops taking proposals and brings the target's "
       "log up to date", "thesis §3.10"),
    _r(r"client reads .* at", "ReadIndex: the leader records its commit index, confirms with a heartbeat "
       "round that it is still leader, then serves once applied that far", "thesis §6.4"),
    _r(r"client read .* dropped", "ReadIndex: a member that knows no leader has no one to confirm a read "
       "index with, so the request is refused and the client retries", "thesis §6.4"),
    _r(r"gets read index", "ReadIndex: a quorum answered the heartbeat round, so the recorded commit "
       "index is safe to read at", "thesis §6.4"),
    _r(r"serves read", "ReadIndex: the read is served once the state machine applied the read index",
       "thesis §6.4"),
    _r(r"client proposes", "clients send commands to the leader (a follower forwards them); the leader "
       "appends them to its log", "§5.1, §5.3"),
    _r(r"proposal .* dropped", "with no leader known (or during a transfer) a proposal is refused and the "
       "client retries", "§8, thesis §3.10"),
    _r(r"is told to campaign", "an operator starts an election at once, as if the election timer fired",
       "§5.2"),
    _r(r"^CRASH|RESTART", "a crash loses volatile state; a restart resumes from what was persisted",
       "§5 Figure 2"),
    _r(r"VIOLATION", "a safety property failed (Election Safety, Log Matching, Leader Completeness, "
       "State Machine Safety)", "§5.2 Figure 3"),
)


def rule_for(text: str) -> tuple[str, str] | None:
    """(rule, section) of the first row whose pattern matches `text`, or None."""
    for row in RULES:
        if row.pattern.search(text):
            return row.rule, row.section
    return None
