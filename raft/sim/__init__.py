"""A deterministic Raft simulator: seeded network faults, crashes and membership changes,
with Raft's safety properties checked after every step.

One `random.Random(seed)` drives the network, the members' election timers and the
schedule of events, so a seed replays exactly. Also a way to watch Raft work:

    python -m raft.sim --seeds 2000                     # many seeded schedules, summary at the end
    python -m raft.sim --seed 7 --steps 400 --trace     # one run, narrated
    python -m raft.sim --scenario figure-8 --trace      # the paper's Figure 8, step by step

Modules: network.py (the lossy network), app.py (the replicated state machine),
cluster.py (members running RawNodes through the Ready cycle, crashes and restarts),
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
