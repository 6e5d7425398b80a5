"""Hand-written scenarios that replay famous corner cases of Raft step by step.

`figure_8` is the paper's Figure 8 (§5.4.2) with three members: an entry from an old
term sits on a majority, yet it is not committed, because a member with a newer entry
at the same index can still win an election and overwrite it. A leader that counted
replicas of old-term entries would commit it, and the checker would see it vanish.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from raft.core import ConfChangeType, StateRole
from raft.sim.cluster import Cluster, Member, SimConfig
from raft.sim.network import FaultRates
from raft.sim.trace import Trace


def tick_until(c: Cluster, cond: Callable[[], bool], limit: int = 20) -> None:
    """Tick until `cond` holds, checked before each tick; fails after `limit` ticks."""
    for _ in range(limit):
        if cond():
            return
        c.tick()
    raise AssertionError(f"condition not reached within {limit} ticks")


def win_election(c: Cluster, m: Member, attempts: int = 3) -> None:
    """Make `m` campaign until it wins; each attempt waits one round trip of one-tick messages."""
    for _ in range(attempts):
        c.campaign(m)
        c.tick(2)
        if m.role is StateRole.LEADER:
            return
    raise AssertionError(f"n{m.id} did not win an election in {attempts} attempts")


def three_members_with_a_leader(seed: int, trace: Trace | None) -> tuple[Cluster, Member]:
    """The opening most scenarios share: three members, ticked until one of them leads."""
    c = Cluster(random.Random(seed), nodes=3, config=SimConfig(election_tick=10), trace=trace)
    tick_until(c, lambda: c.leader() is not None, limit=40)
    leader = c.leader()
    assert leader is not None
    return c, leader


def figure_8(trace: Trace | None = None) -> Cluster:
    """Play Figure 8 of the Raft paper; returns the cluster (the checker raises if safety breaks)."""
    # No spontaneous elections, no pre-vote or leases: the script alone decides who campaigns.
    # One entry per message and one message in flight make each append a separate step.
    config = SimConfig(election_tick=100, pre_vote=False, check_quorum=False, max_size_per_msg=1,
                       max_inflight_msgs=1)
    c = Cluster(random.Random(8), nodes=3, config=config, trace=trace)
    n1, n2, n3 = (c.members[i] for i in (1, 2, 3))
    c.campaign(n1)  # term 2; 4@2 commits everywhere
    c.network.faults = FaultRates(delay=1.0, max_delay=1)  # every message now takes exactly one tick

    c.note("(a) n1 leads term 2 but is cut off: its new entry 5@2 stays on n1 alone")
    c.network.partition([1], [2, 3])
    c.propose(n1)

    c.note("(b) n2 wins term 3 with n3's vote, then is cut off before 5@3 reaches anyone")
    win_election(c, n2)
    c.network.block(2, 3)

    c.note("(c) n1 restarts and wins term 4 with n3's vote, and copies 5@2 to n3: a majority holds it")
    c.network.heal()
    c.network.partition([2], [1, 3])
    c.crash(n1)
    c.restart(n1)
    win_election(c, n1)
    tick_until(c, lambda: n3.storage.last_index() >= 5 and n3.storage.term(5) == 2)
    c.note("    n1 -> n3 breaks now: n3's ack of 5@2 arrives, but 6@4 (n1's own-term entry) never does;"
           " 5@2 must NOT count as committed (§5.4.2)")
    c.network.block(1, 3)
    c.tick(3)

    c.note("(d) n2 restarts and wins term 5 with n3's vote (5@3 is newer than 5@2) and overwrites 5@2")
    c.network.heal()
    c.network.partition([1], [2, 3])
    c.crash(n2)
    c.restart(n2)
    win_election(c, n2)
    tick_until(c, lambda: n3.storage.last_index() >= 5 and n3.storage.term(5) == 3)
    c.note("done: 5@2 was never committed, so replacing it broke nothing")
    return c


SCENARIOS: dict[str, Callable[[Trace | None], Cluster]] = {"figure-8": figure_8}


def election(trace: Trace | None = None) -> Cluster:
    """A leader crashes; the others notice its silence, and PreVote then a real vote elect a new one."""
    c = Cluster(random.Random(1), nodes=3, config=SimConfig(election_tick=10), trace=trace)
    tick_until(c, lambda: c.leader() is not None, limit=40)
    old = c.leader()
    assert old is not None
    c.propose(old)
    c.tick(2)
    c.note(f"the leader n{old.id} crashes; its followers stop hearing heartbeats")
    c.crash(old)
    tick_until(c, lambda: c.leader() is not None, limit=60)
    c.note(f"n{old.id} restarts, hears of the higher term and follows the new leader")
    c.restart(old)
    c.tick(3)
    return c


def leader_partition(trace: Trace | None = None) -> Cluster:
    """The leader is cut off: the majority elects a new leader; the old one cannot commit, then steps down."""
    c, old = three_members_with_a_leader(2, trace)
    others = [i for i in c.members if i != old.id]
    c.note(f"PARTITION [{old.id}] | {others}: the leader n{old.id} is cut off from the majority")
    c.network.partition([old.id], others)
    c.propose(old)
    c.note(f"n{old.id}'s new entry reaches no majority, so it never commits (§5.3)")
    tick_until(c, lambda: any(m.role is StateRole.LEADER and m.id != old.id for m in c.live_members()),
               limit=60)
    c.tick(12)  # CheckQuorum: the cut-off leader steps down after an election timeout without a quorum
    c.note("HEAL: the old leader hears the higher term, steps down and its uncommitted entry is replaced")
    c.network.heal()
    c.tick(5)
    return c


def snapshot_catch_up(trace: Trace | None = None) -> Cluster:
    """A follower misses entries the leader has compacted away; it catches up from a snapshot (§7)."""
    c, leader = three_members_with_a_leader(3, trace)
    lagging = next(m for m in c.live_members() if m.id != leader.id)
    c.note(f"n{lagging.id} crashes and misses the next writes")
    c.crash(lagging)
    for _ in range(4):
        c.propose(leader)
        c.tick()
    c.note(f"the leader n{leader.id} snapshots and compacts its log: the entries n{lagging.id} lacks are gone")
    c.take_snapshot(leader, keep=0)
    c.note(f"n{lagging.id} restarts; the leader must send the snapshot instead of entries")
    c.restart(lagging)
    tick_until(c, lambda: lagging.app.applied_index >= leader.app.applied_index, limit=30)
    return c


def membership_change(trace: Trace | None = None) -> Cluster:
    """Add a learner, promote it to voter, then remove an old voter: one change at a time (thesis §4.1)."""
    c, leader = three_members_with_a_leader(4, trace)
    c.propose(leader)
    new_id = c.new_member_id()
    c.note(f"add n{new_id} as a learner: it receives the log but does not vote")
    c.propose_conf_change(ConfChangeType.ADD_LEARNER_NODE, new_id)
    tick_until(c, lambda: c.pending_conf is None and new_id in c.members
               and c.members[new_id].app.applied_index >= leader.app.applied_index, limit=30)
    c.note(f"n{new_id} has caught up: promote it to voter")
    c.propose_conf_change(ConfChangeType.ADD_NODE, new_id)
    tick_until(c, lambda: c.pending_conf is None, limit=30)
    victim = next(m for m in c.live_members() if m.id not in (leader.id, new_id))
    c.note(f"remove n{victim.id}: the cluster is back to three voters")
    c.propose_conf_change(ConfChangeType.REMOVE_NODE, victim.id)
    tick_until(c, lambda: c.pending_conf is None, limit=30)
    c.tick(25)
    return c


def leader_transfer(trace: Trace | None = None) -> Cluster:
    """The leader hands leadership to a chosen follower (thesis §3.10) without waiting for a timeout."""
    c, leader = three_members_with_a_leader(5, trace)
    c.propose(leader)
    target = next(m for m in c.live_members() if m.id != leader.id)
    c.transfer_leader(target)
    tick_until(c, lambda: target.role is StateRole.LEADER, limit=20)
    c.note(f"n{target.id} leads term {target.term}; no member waited for an election timeout")
    c.tick(2)
    return c


def read_index(trace: Trace | None = None) -> Cluster:
    """A linearizable read at a follower: the leader confirms it still leads before answering (thesis §6.4)."""
    c, leader = three_members_with_a_leader(6, trace)
    c.propose(leader)
    follower = next(m for m in c.live_members() if m.id != leader.id)
    c.read(follower)
    c.tick(3)
    return c


SCENARIOS["election"] = election
SCENARIOS["leader-partition"] = leader_partition
SCENARIOS["snapshot-catch-up"] = snapshot_catch_up
SCENARIOS["membership-change"] = membership_change
SCENARIOS["leader-transfer"] = leader_transfer
SCENARIOS["read-index"] = read_index

# What to watch for in each scenario: shown beside the step-through.
ABOUT: dict[str, str] = {
    "figure-8": "The paper's Figure 8 (§5.4.2). Watch entry 5@2 reach a majority (n1, n3) in step (c) and "
                "still not commit: n1 commits only entries of its own term. In (d) n2 wins with 5@3 and "
                "overwrites 5@2 — safe, because it was never committed.",
    "election": "Watch the followers' election timers run out after the leader crashes: a PreVote round "
                "(thesis §9.6) first, then a real vote in a higher term (§5.2); the winner's first entry "
                "commits the log. The old leader rejoins as a follower.",
    "leader-partition": "Watch the cut-off leader keep its role while the majority elects a new one in a "
                        "higher term; its own new entry never commits. CheckQuorum makes it step down, and "
                        "after the heal its uncommitted entry is overwritten (§5.3).",
    "snapshot-catch-up": "Watch the leader's progress for the restarted follower: its next index falls below "
                         "the leader's first index, so the leader switches that follower to 'snapshot' and "
                         "sends its snapshot (§7), then returns to probe/replicate.",
    "membership-change": "Watch the voters list: a learner joins and catches up without voting, is promoted, "
                         "then an old voter is removed — one change at a time, each taking effect when "
                         "applied (thesis §4.1).",
    "leader-transfer": "Watch the leader bring the target up to date, then send TimeoutNow: the target "
                       "campaigns at once, skipping PreVote (thesis §3.10).",
    "read-index": "Watch the ReadIndex round: the follower asks the leader, the leader records its commit "
                  "index and confirms leadership with a heartbeat round before the read is answered "
                  "(thesis §6.4).",
}
