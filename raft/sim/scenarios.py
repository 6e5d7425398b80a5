"""Hand-written scenarios that replay famous corner cases of Raft step by step.

`figure_8` is the paper's Figure 8 (§5.4.2) with three members: an entry from an old
term sits on a majority, yet it is not committed, because a member with a newer entry
at the same index can still win an election and overwrite it. A leader that counted
replicas of old-term entries would commit it, and the checker would see it vanish.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from raft.core import StateRole
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
