"""Record a simulated run as steps for the step-through viewer: one step per narrated event.

Each step holds the narration line, the Raft rule it follows and its section (rules.py),
every member's state at that moment, the links that are cut, and the messages sent since
the step before, with their fate (delivered, delayed, duplicated, dropped, cut). The
safety checker runs inside the cluster as usual, so a broken property ends the recording
on the step that broke it. The steps are plain JSON-ready dicts, in the shape the page
(raft/view/page) also receives from a live member.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from raft.core.types import Message, StateRole
from raft.sim.cluster import Cluster, Member
from raft.sim.invariants import Violation
from raft.sim.rules import rule_for
from raft.sim.trace import Trace

Json = dict[str, Any]

# Timeline lanes, chosen by the first matching word in a step's narration.
_CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("violation", ("VIOLATION",)),
    ("fault", ("CRASH", "RESTART", "PARTITION", "ONE-WAY CUT", "ISOLATE", "HEAL", "network faults",
               "lost in flight", "[lost]", "loses its unsynced", "will crash")),
    ("leader", ("becomes LEADER", "hand leadership")),
    ("election", ("candidate", "pre-candidate", "votes for", "refuses its vote", "pre-vote",
                  "campaign", " term ")),
    ("membership", ("adds voter", "adds learner", "removes n", "updates n", "proposes ADD", "proposes REMOVE",
                    "starts empty", "shuts down")),
    ("read", ("read",)),
    ("snapshot", ("snapshot", "compacts")),
)


def category_of(text: str, has_rule: bool = True) -> str:
    """The timeline lane of a narrated line; a line no rule governs is the script's own commentary."""
    for name, words in _CATEGORIES:
        if not has_rule and name not in ("violation", "fault"):
            break
        if any(w in text for w in words):
            return name
    return "log" if has_rule else "note"


def member_view(m: Member) -> Json:
    """What the page shows for one simulated member; a member that is down keeps its persisted state."""
    storage = m.storage
    view: Json = {
        "id": m.id,
        "status": "removed" if m.stopped else ("down" if m.node is None else "up"),
        "first_index": storage.first_index(),
        "last_index": storage.last_index(),
        "snapshot_index": storage.snapshot().metadata.index,
        "applied": m.app.applied_index,
        "voters": sorted(m.app.conf_state.voters),
        "learners": sorted(m.app.conf_state.learners),
        "progress": {},
    }
    if m.node is None:
        hs = m.hard_state
        view.update(role="down", term=hs.term, vote=hs.vote, commit=hs.commit, leader=0)
        return view
    st = m.node.status()
    view.update(role=st.role.value, term=st.term, vote=st.vote, commit=st.commit, leader=st.leader_id,
                last_index=st.last_index)
    if st.role is StateRole.LEADER:
        view["progress"] = {
            str(pid): {"match": p.match, "next": p.next, "state": p.state.value, "inflight": p.inflight,
                       "learner": p.is_learner, "active": p.recent_active}
            for pid, p in sorted(st.progress.items())
        }
    return view


class StepRecorder(Trace):
    """A Trace that keeps, for every narrated line, a snapshot of the whole simulated cluster."""

    def __init__(self) -> None:
        super().__init__(enabled=True)
        self.cluster: Cluster | None = None
        self.steps: list[Json] = []
        self._links: dict[tuple[int, int], Json] = {}

    def bind(self, cluster: Cluster) -> None:
        self.cluster = cluster
        cluster.network.observer = self._on_send

    def _on_send(self, msg: Message, fate: str, delays: tuple[int, ...]) -> None:
        link = self._links.setdefault((msg.sender, msg.to), {
            "from": msg.sender, "to": msg.to, "sent": 0, "dropped": 0, "cut": 0, "delayed": 0,
            "duplicated": 0, "types": {}})
        link["sent"] += 1
        types: dict[str, int] = link["types"]
        types[msg.type.name] = types.get(msg.type.name, 0) + 1
        if fate != "sent":
            link[fate] += 1
        else:
            link["delayed"] += sum(1 for d in delays if d > 0)
            link["duplicated"] += len(delays) - 1

    def note(self, tick: int, text: str) -> None:
        super().note(tick, text)
        self.steps.append(self._step(tick, text))

    def _step(self, tick: int, text: str) -> Json:
        c = self.cluster
        rule = rule_for(text)
        step: Json = {
            "step": len(self.steps), "tick": tick, "text": text.strip(),
            "category": category_of(text, rule is not None),
            "rule": rule[0] if rule else None, "section": rule[1] if rule else None,
            "members": [], "blocked": [], "links": list(self._links.values()), "in_flight": 0,
            "faults": None,
        }
        self._links = {}
        if c is None:
            return step
        step["members"] = [member_view(m) for _, m in sorted(c.members.items())]
        step["blocked"] = sorted([a, b] for a, b in c.network.blocked)
        step["in_flight"] = c.network.in_flight()
        f = c.network.faults
        step["faults"] = {"drop": f.drop, "duplicate": f.duplicate, "delay": f.delay, "reorder": f.reorder}
        return step

    def mark_violation(self, violation: Violation) -> None:
        """Make sure the recording ends on the step that broke `violation`'s property."""
        if not self.steps or self.steps[-1]["category"] != "violation":
            tick = self.cluster.now if self.cluster is not None else 0
            self.note(tick, f"VIOLATION {violation}")
        self.steps[-1]["violation"] = str(violation)


@dataclass(frozen=True, slots=True)
class Recording:
    """A recorded run: what it was, the steps, and the violation that ended it, if any."""

    title: str
    about: str
    steps: list[Json]
    violation: str | None


def record_scenario(name: str, play: Callable[[Trace | None], Cluster], about: str) -> Recording:
    """Play a hand-written scenario, recording each step; a violation ends the recording there."""
    rec = StepRecorder()
    violation: str | None = None
    try:
        c = play(rec)
        c.close()
    except Violation as v:
        rec.mark_violation(v)
        violation = str(v)
    return Recording(f"scenario {name}", about, rec.steps, violation)


def record_seed(seed: int, steps: int, nodes: int, driver: bool = False) -> Recording:
    """Replay one seeded schedule (the same run `python -m raft.sim --seed N` checks), recording each step."""
    from raft.sim.driven import DrivenCluster
    from raft.sim.schedule import run_seed

    rec = StepRecorder()
    result = run_seed(seed, steps=steps, nodes=nodes, trace=rec,
                      cluster_type=DrivenCluster if driver else Cluster)
    violation = None
    if result.violation is not None:
        rec.mark_violation(result.violation)
        violation = str(result.violation)
    about = (f"Seed {seed}: {steps} random events (crashes, partitions, lossy links, membership changes, "
             f"snapshots, reads) on {nodes} members; the safety checker runs after every step.")
    return Recording(f"seed {seed}", about, rec.steps, violation)


