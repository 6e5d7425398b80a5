"""Schedules: sequences of fault events and client operations, and the runner that plays them.

Events name members by a `pick` number that is resolved against the members that exist
when the event runs (`pick % len(candidates)`), so any sequence is meaningful whatever
membership changes came before it; that lets hypothesis generate schedules freely.
"""

from __future__ import annotations

import dataclasses
import random
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from raft.core import ConfChangeType, StateRole
from raft.sim.cluster import Cluster, CrashPoint, Member, Proposal, SimConfig
from raft.sim.invariants import Violation
from raft.sim.network import HEALTHY, FaultRates
from raft.sim.trace import Trace

FAULT_LEVELS: tuple[FaultRates, ...] = (
    HEALTHY,
    FaultRates(drop=0.1),
    FaultRates(duplicate=0.15),
    FaultRates(delay=0.3, max_delay=3, reorder=True),
    FaultRates(drop=0.05, duplicate=0.05, delay=0.3, max_delay=4, reorder=True),
)


@dataclass(frozen=True, slots=True)
class Tick:
    count: int = 1


@dataclass(frozen=True, slots=True)
class Propose:
    pick: int


@dataclass(frozen=True, slots=True)
class Read:
    pick: int


@dataclass(frozen=True, slots=True)
class Partition:
    """Split the members in two: bit i of `mask` puts the i-th member on side A."""

    mask: int


@dataclass(frozen=True, slots=True)
class BlockLink:
    """A one-way cut from one member to another."""

    src_pick: int
    dst_pick: int


@dataclass(frozen=True, slots=True)
class IsolateLeader:
    pass


@dataclass(frozen=True, slots=True)
class Heal:
    pass


@dataclass(frozen=True, slots=True)
class SetFaults:
    level: int  # index into FAULT_LEVELS


@dataclass(frozen=True, slots=True)
class Crash:
    pick: int
    point: CrashPoint = CrashPoint.NOW


@dataclass(frozen=True, slots=True)
class CrashLeader:
    point: CrashPoint = CrashPoint.NOW


@dataclass(frozen=True, slots=True)
class Restart:
    pick: int


@dataclass(frozen=True, slots=True)
class AddVoter:
    pass


@dataclass(frozen=True, slots=True)
class AddLearner:
    pass


@dataclass(frozen=True, slots=True)
class PromoteLearner:
    pick: int


@dataclass(frozen=True, slots=True)
class RemoveFollower:
    pick: int


@dataclass(frozen=True, slots=True)
class RemoveLeader:
    pass


@dataclass(frozen=True, slots=True)
class TakeSnapshot:
    pick: int
    keep: int = 0


@dataclass(frozen=True, slots=True)
class TransferLeader:
    pick: int


@dataclass(frozen=True, slots=True)
class Campaign:
    pick: int


Event = (Tick | Propose | Read | Partition | BlockLink | IsolateLeader | Heal | SetFaults
         | Crash | CrashLeader | Restart
         | AddVoter | AddLearner | PromoteLearner | RemoveFollower | RemoveLeader | TakeSnapshot
         | TransferLeader | Campaign)

MAX_VOTERS = 5
MIN_VOTERS_TO_REMOVE = 3  # removing from two voters can strand the survivor (it needs the removed one's vote)
CONF_CHANGE_TIMEOUT_TICKS = 60


def _pick(members: Sequence[Member], pick: int) -> Member | None:
    return members[pick % len(members)] if members else None


class Runner:
    """Plays events against a Cluster; the cluster's checker raises Violation on a broken property."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def run(self, event: Event) -> None:
        c = self.cluster
        self._expire_conf_change()
        match event:
            case Tick(count):
                c.tick(count)
            case Propose(pick):
                m = _pick(c.live_members(), pick)
                if m is not None:
                    c.propose(m)
            case Read(pick):
                m = _pick(c.live_members(), pick)
                if m is not None:
                    c.read(m)
            case Partition(mask):
                ids = self._running_ids()
                side_a = [i for n, i in enumerate(ids) if mask >> n & 1]
                side_b = [i for i in ids if i not in side_a]
                if side_a and side_b:
                    c.network.partition(side_a, side_b)
                    c.note(f"PARTITION {side_a} | {side_b}")
            case BlockLink(src_pick, dst_pick):
                ids = self._running_ids()
                if len(ids) > 1:
                    src = ids[src_pick % len(ids)]
                    dst = [i for i in ids if i != src][dst_pick % (len(ids) - 1)]
                    c.network.block(src, dst)
                    c.note(f"ONE-WAY CUT: n{src} can no longer reach n{dst}")
            case IsolateLeader():
                leader = c.leader()
                if leader is not None:
                    c.network.isolate(leader.id, self._running_ids())
                    c.note(f"ISOLATE leader n{leader.id}")
            case Heal():
                c.network.heal()
                c.note("HEAL: every link works again")
            case SetFaults(level):
                c.network.faults = FAULT_LEVELS[level % len(FAULT_LEVELS)]
                c.note(f"network faults now {c.network.faults}")
            case Crash(pick, point):
                m = _pick(c.live_members(), pick)
                if m is not None and (pick % 8 == 0 or self._quorum_survives(m)):
                    c.crash(m, point)
            case CrashLeader(point):
                leader = c.leader()
                if leader is not None and self._quorum_survives(leader):
                    c.crash(leader, point)
            case Restart(pick):
                m = _pick([m for _, m in sorted(c.members.items()) if m.crashed and not m.stopped], pick)
                if m is not None:
                    c.restart(m)
            case AddVoter() | AddLearner():
                self._add(learner=isinstance(event, AddLearner))
            case PromoteLearner(pick):
                conf = c.latest_conf()
                if c.pending_conf is None and conf.learners and len(conf.voters) < MAX_VOTERS:
                    target = sorted(conf.learners)[pick % len(conf.learners)]
                    c.propose_conf_change(ConfChangeType.ADD_NODE, target)
            case RemoveFollower(pick):
                conf = c.latest_conf()
                leader = c.leader()
                candidates = sorted(set(conf.voters) | set(conf.learners))
                if leader is not None:
                    candidates = [i for i in candidates if i != leader.id]
                if (c.pending_conf is None and leader is not None and candidates
                        and len(conf.voters) >= MIN_VOTERS_TO_REMOVE):
                    c.propose_conf_change(ConfChangeType.REMOVE_NODE, candidates[pick % len(candidates)])
            case RemoveLeader():
                conf = c.latest_conf()
                leader = c.leader()
                if c.pending_conf is None and leader is not None and len(conf.voters) >= MIN_VOTERS_TO_REMOVE:
                    c.propose_conf_change(ConfChangeType.REMOVE_NODE, leader.id)
            case TakeSnapshot(pick, keep):
                m = _pick(c.live_members(), pick)
                if m is not None:
                    c.take_snapshot(m, keep)
            case TransferLeader(pick):
                # Mostly voters; a learner now and then, which the leader must refuse.
                conf = c.latest_conf()
                ids = sorted(conf.voters) if pick % 4 else sorted(set(conf.voters) | set(conf.learners))
                m = _pick([c.members[i] for i in ids if i in c.members and c.members[i].live], pick)
                if m is not None:
                    c.transfer_leader(m)
            case Campaign(pick):
                m = _pick(c.live_members(), pick)
                if m is not None:
                    c.campaign(m)

    def _quorum_survives(self, m: Member) -> bool:
        """Would a majority of voters still run without `m`? Crashes mostly spare the quorum, so
        that most of the run has a leader doing work; now and then one takes it down anyway."""
        voters = self.cluster.latest_conf().voters
        running = [v for v in voters if v != m.id and v in self.cluster.members and self.cluster.members[v].live]
        return len(running) > len(voters) // 2

    def _running_ids(self) -> list[int]:
        return [i for i, m in sorted(self.cluster.members.items()) if not m.stopped]

    def _add(self, learner: bool) -> None:
        c = self.cluster
        conf = c.latest_conf()
        if c.pending_conf is not None or c.leader() is None:
            return
        if not learner and len(conf.voters) >= MAX_VOTERS:
            return
        if len(conf.voters) + len(conf.learners) >= MAX_VOTERS + 2:
            return
        kind = ConfChangeType.ADD_LEARNER_NODE if learner else ConfChangeType.ADD_NODE
        c.propose_conf_change(kind, c.new_member_id())

    def _expire_conf_change(self) -> None:
        """A conf change whose entry was lost (e.g. to a leader change) is given up after a while."""
        c = self.cluster
        if c.pending_conf is not None and c.now - c.pending_conf[1] > CONF_CHANGE_TIMEOUT_TICKS:
            cc = c.pending_conf[0]
            c.note(f"admin gives up on conf change {cc.type.name} n{cc.node_id}")
            c.pending_conf = None

    # -- liveness ------------------------------------------------------------------------------

    def settle(self, max_ticks: int) -> None:
        """Heal everything, then require progress: a leader that all members follow commits a new write.

        Raft promises liveness only once the network is healthy and a quorum is up (§5.6),
        so this check is separate from safety and a schedule may skip it.
        """
        c = self.cluster
        c.note("SETTLE: heal the network, restart crashed members, and wait for progress")
        c.network.heal()
        c.network.faults = HEALTHY
        for m in list(c.members.values()):
            m.crash_at = None
            if m.crashed and not m.stopped:
                c.restart(m)
        c.stabilize()
        marker: Proposal | None = None
        retry_ticks = 5 * c.config.election_tick
        problem = "no tick ran"
        for n in range(max_ticks):
            if n % (2 * c.config.election_tick) == 0:
                # Like etcd's periodic snapshots. A member added after the last snapshot refuses it
                # (it cannot restore into a configuration that lacks it) until a newer one exists.
                for m in c.live_members():
                    c.take_snapshot(m, keep=0)
            c.tick()
            leader = c.leader()
            if leader is None:
                problem = "no leader"
                continue
            if marker and marker.acked_index is None and c.now - marker.proposed_tick > retry_ticks:
                marker = None  # the entry may have been lost with an old leader's uncommitted tail
            if marker is None:
                marker = c.propose(leader)
                if marker is None:
                    problem = f"leader n{leader.id} drops proposals"
                    continue
            problem = self._progress_problem(leader, marker)
            if not problem:
                c.note(f"SETTLED: leader n{leader.id}; every member applied {marker.payload.decode()}")
                return
        raise Violation("liveness", f"after healing and {max_ticks} quiet ticks: {problem}")

    def _progress_problem(self, leader: Member, marker: Proposal) -> str:
        c = self.cluster
        if marker.acked_index is None:
            return f"leader n{leader.id} has not committed {marker.payload.decode()}"
        conf = leader.app.conf_state
        for member_id in sorted(set(conf.voters) | set(conf.learners)):
            m = c.members.get(member_id)
            if m is None or m.node is None:
                return f"member n{member_id} of the configuration is not running"
            if m.role is StateRole.LEADER and m is not leader:
                return f"two live leaders: n{leader.id} and n{m.id}"
            if m is not leader and m.leader_id != leader.id:
                return f"n{m.id} does not follow leader n{leader.id} (it follows n{m.leader_id})"
            if m.app.applied_index < marker.acked_index:
                return f"n{m.id} applied only {m.app.applied_index} of {marker.acked_index}"
        for q in c.proposals.values():
            if q.acked_index is not None and q.acked_index > leader.commit:
                return f"acknowledged {q.payload!r} at {q.acked_index} is past leader commit {leader.commit}"
        return ""


# -- seeded schedules -------------------------------------------------------------------------

_WEIGHTED: tuple[tuple[float, Callable[[random.Random], Event]], ...] = (
    (60.0, lambda r: Tick(1)),
    (10.0, lambda r: Propose(r.randrange(16))),
    (5.0, lambda r: Read(r.randrange(16))),
    (1.5, lambda r: Partition(r.randrange(1, 1 << 7))),
    (0.7, lambda r: BlockLink(r.randrange(16), r.randrange(16))),
    (0.7, lambda r: IsolateLeader()),
    (3.5, lambda r: Heal()),
    (1.5, lambda r: SetFaults(r.randrange(len(FAULT_LEVELS)))),
    (1.5, lambda r: Crash(r.randrange(16), CrashPoint(r.randrange(len(CrashPoint))))),
    (0.7, lambda r: CrashLeader(CrashPoint(r.randrange(len(CrashPoint))))),
    (3.0, lambda r: Restart(r.randrange(16))),
    (0.8, lambda r: AddVoter()),
    (0.8, lambda r: AddLearner()),
    (0.8, lambda r: PromoteLearner(r.randrange(16))),
    (0.6, lambda r: RemoveFollower(r.randrange(16))),
    (0.4, lambda r: RemoveLeader()),
    (2.5, lambda r: TakeSnapshot(r.randrange(16), r.randrange(3))),
    (0.8, lambda r: TransferLeader(r.randrange(16))),
    (0.4, lambda r: Campaign(r.randrange(16))),
)


def random_events(rng: random.Random, steps: int) -> Iterator[Event]:
    """`steps` events drawn from `rng`, weighted so time mostly passes and faults come and go."""
    weights = [w for w, _ in _WEIGHTED]
    makers = [f for _, f in _WEIGHTED]
    for _ in range(steps):
        (maker,) = rng.choices(makers, weights)
        yield maker(rng)


# -- running ---------------------------------------------------------------------------------


@dataclass(slots=True)
class SimResult:
    """The outcome of one schedule."""

    seed: int
    violation: Violation | None
    ticks: int = 0
    events: int = 0
    stats: dict[str, int] = field(default_factory=dict)
    trace: Trace | None = None
    cluster: Cluster | None = None  # kept so tests can inspect the final state

    @property
    def ok(self) -> bool:
        return self.violation is None


def run_events(events: Iterable[Event], seed: int, nodes: int = 3,
               check_liveness: bool = True, trace: Trace | None = None,
               config: SimConfig | None = None, rng: random.Random | None = None,
               cluster_type: type[Cluster] = Cluster) -> SimResult:
    """Play `events` on a fresh cluster whose network and clocks are seeded with `seed`.

    `cluster_type` is Cluster (members run the core through the shared Ready cycle) or
    raft.sim.driven.DrivenCluster (members run the production driver on a virtual clock).
    """
    rng = rng if rng is not None else random.Random(seed)
    trace = trace or Trace()
    result = SimResult(seed, None, trace=trace)
    cluster: Cluster | None = None
    try:
        cluster = cluster_type(rng, nodes=nodes, config=config, trace=trace)
        runner = Runner(cluster)
        for event in events:
            result.events += 1
            runner.run(event)
        cluster.check_logs()
        if check_liveness:
            runner.settle(max_ticks=30 * cluster.config.election_tick)
            cluster.check_logs()
    except Violation as v:
        result.violation = v
    except Exception as exc:  # a crash of the core is as much a bug as a broken invariant
        tb = traceback.format_exception(exc)
        result.violation = Violation("core raised", "".join(tb[-6:]).rstrip())
    if cluster is not None:
        cluster.close()
        result.cluster = cluster
        result.ticks = cluster.now
        result.stats = dict(cluster.stats)
        result.stats["safety checks"] = cluster.checker.checks
        if result.violation is not None:
            trace.note(cluster.now, f"VIOLATION {result.violation}")
    return result


def random_config(rng: random.Random) -> SimConfig:
    """Timeouts and flow-control windows vary by seed: one-entry messages and a one-message window
    stretch replication over many steps, which is where ordering bugs hide."""
    election_tick = rng.choice((5, 10))
    return SimConfig(
        election_tick=election_tick,
        heartbeat_tick=rng.choice((1, 2)) if election_tick > 5 else 1,
        max_size_per_msg=rng.choice((1, 256, 1 << 16)),
        max_inflight_msgs=rng.choice((1, 4, 256)),
        max_committed_size_per_ready=rng.choice((1, 1 << 20)),
        # Safety must not depend on the optional rules, so they are sometimes off.
        pre_vote=rng.random() < 0.75,
        check_quorum=rng.random() < 0.75,
    )


def run_seed(seed: int, steps: int = 400, nodes: int = 3, check_liveness: bool = True,
             trace: Trace | None = None, config: SimConfig | None = None,
             cluster_type: type[Cluster] = Cluster) -> SimResult:
    """One seeded schedule: the same (seed, steps, nodes, cluster_type) always replays the same run."""
    rng = random.Random(seed)
    # Every other seed batches appends as the production driver does; deciding by parity leaves the
    # random draws, and so every seed's schedule, as they were.
    config = config or dataclasses.replace(random_config(rng), batch_appends=seed % 2 == 1)
    return run_events(random_events(rng, steps), seed, nodes=nodes, check_liveness=check_liveness,
                      trace=trace, config=config, rng=rng, cluster_type=cluster_type)
