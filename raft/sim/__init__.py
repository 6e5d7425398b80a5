"""A deterministic Raft simulator: seeded network faults, crashes and membership changes,
with Raft's safety properties checked after every step.

One `random.Random(seed)` drives the network, the members' election timers and the
schedule of events, so a seed replays exactly. Also a way to watch Raft work:

    python -m raft.sim --seeds 2000                     # many seeded schedules, summary at the end
    python -m raft.sim --driver --seeds 1000            # the same on the production driver
    python -m raft.sim --seed 7 --steps 400 --trace     # one run, narrated
    python -m raft.sim --scenario figure-8 --trace      # the paper's Figure 8, step by step

Two ways to run a member, both through the shared Ready cycle (raft/core/ready_cycle.py):
cluster.py runs its RawNode through it directly; driven.py (`--driver`) runs the production
driver, raft/node.py's RaftNode (which runs the same cycle with awaits), on a virtual-time
event loop (virtual_clock.py) over the in-memory transport, and also checks the driver's
conf-change contract.

Modules: network.py (the lossy network), app.py (the replicated state machine),
cluster.py (members, crashes and restarts), driven.py (the same with real RaftNodes),
invariants.py (the checker), schedule.py (events, seeded schedules, liveness),
scenarios.py (hand-written corner cases), trace.py (the narration).
"""

from raft.sim.cluster import Cluster, CrashPoint, Member, SimConfig
from raft.sim.invariants import SafetyChecker, Violation
from raft.sim.network import FaultRates, Network
from raft.sim.schedule import Event, Runner, SimResult, random_events, run_events, run_seed
from raft.sim.trace import Trace

__all__ = [
    "Cluster",
    "CrashPoint",
    "Event",
    "FaultRates",
    "Member",
    "Network",
    "Runner",
    "SafetyChecker",
    "SimConfig",
    "SimResult",
    "Trace",
    "Violation",
    "random_events",
    "run_events",
    "run_seed",
]
