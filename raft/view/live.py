"""A member's own Raft view, sampled only while someone watches it.

`RaftViewCollector` costs nothing while no page is open: it has no task, and the one hook
it uses (`RaftNode.message_observer`, checked once per batch of outgoing messages) is None.
The first subscriber starts a sampler that reads the node's status every `interval` and
counts outgoing messages by peer and type; the last one to leave stops it and removes the
hook. Each sample yields a `state` event (this member in the page's member shape, plus
message rates to each peer) and `timeline` events for what changed since the last sample:
role, term, vote, leader, membership, ReadIndex rounds, compaction, and the elections
seen in the messages this member sent (campaigns, votes, pre-votes, TimeoutNow).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from raft.core import Message, MessageType, StateRole
from raft.node import RaftNode

Json = dict[str, Any]
SAMPLE_INTERVAL_S = 0.25
QUEUE_LIMIT = 256  # a page that stops reading loses old samples, never slows the member


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """One server-sent event: its name and JSON body."""

    name: str
    data: Json


def member_state(node: RaftNode) -> Json:
    """This member in the page's shape (the same keys the simulator's steps use)."""
    st = node.status()
    first = node.log_store.first_index()
    view: Json = {
        "id": st.id, "status": "up", "role": st.role.value, "term": st.term, "vote": st.vote,
        "leader": st.leader_id, "first_index": first, "last_index": st.last_index, "commit": st.commit,
        "applied": st.applied,
        # The log starts right after the last snapshot, so this needs no read of the snapshot itself.
        "snapshot_index": first - 1,
        "voters": sorted(st.conf_state.voters), "learners": sorted(st.conf_state.learners),
        "read_rounds": node.read_rounds, "progress": {},
    }
    if st.role is StateRole.LEADER:
        view["progress"] = {
            str(pid): {"match": p.match, "next": p.next, "state": p.state.value, "inflight": p.inflight,
                       "learner": p.is_learner, "active": p.recent_active}
            for pid, p in sorted(st.progress.items())
        }
    return view


def _changes(before: Json | None, now: Json) -> list[tuple[str, str]]:
    """(category, text) for each change a learner wants on the timeline."""
    me = f"{now['id']:x}"
    if before is None:
        return [("note", f"watching {me}: {now['role']} in term {now['term']}")]
    out: list[tuple[str, str]] = []
    if now["term"] != before["term"]:
        out.append(("election", f"{me} term {before['term']} -> {now['term']}"))
    if now["role"] != before["role"]:
        category = "leader" if now["role"] == "leader" else "election"
        out.append((category, f"{me} becomes {now['role']} in term {now['term']}"))
    if now["leader"] != before["leader"]:
        who = f"{now['leader']:x}" if now["leader"] else "no leader"
        out.append(("leader", f"{me} sees {who} as leader of term {now['term']}"))
    if (now["voters"], now["learners"]) != (before["voters"], before["learners"]):
        out.append(("membership", f"{me} applies a membership change: voters "
                    f"{' '.join(f'{v:x}' for v in now['voters'])}"
                    + (f", learners {' '.join(f'{v:x}' for v in now['learners'])}" if now["learners"] else "")))
    if now["read_rounds"] > before["read_rounds"]:
        out.append(("read", f"{me} asked for {now['read_rounds'] - before['read_rounds']} ReadIndex round(s)"))
    if now["snapshot_index"] > before["snapshot_index"]:
        out.append(("snapshot", f"{me} compacted its log through {now['snapshot_index']} (snapshot)"))
    for pid, p in now["progress"].items():
        old = before["progress"].get(pid)
        if old is not None and old["state"] != p["state"]:
            category = "snapshot" if p["state"] == "snapshot" else "log"
            out.append((category, f"leader {me} moves {int(pid):x} from {old['state']} to {p['state']}"))
    return out


def _message_note(me: int, m: Message) -> tuple[str, str] | None:
    """Timeline text for the election messages this member sends; None for routine traffic."""
    t = m.type
    if t is MessageType.VOTE:
        return "election", f"{me:x} campaigns in term {m.term}: asks {m.to:x} for its vote"
    if t is MessageType.PRE_VOTE:
        return "election", f"{me:x} asks {m.to:x} for a pre-vote for term {m.term} (PreVote)"
    if t is MessageType.VOTE_RESP:
        verb = "refuses its vote to" if m.reject else "votes for"
        return "election", f"{me:x} {verb} {m.to:x} in term {m.term}"
    if t is MessageType.PRE_VOTE_RESP:
        verb = "refuses a pre-vote to" if m.reject else "grants a pre-vote to"
        return "election", f"{me:x} {verb} {m.to:x} for term {m.term}"
    if t is MessageType.TIMEOUT_NOW:
        return "leader", f"{me:x} hands leadership to {m.to:x} (TimeoutNow)"
    if t is MessageType.SNAP:
        return "snapshot", f"{me:x} sends its snapshot to {m.to:x}"
    return None


@dataclass(slots=True)
class RaftViewCollector:
    """Samples one RaftNode for the pages that watch it; idle, and hook-free, when none do."""

    node: RaftNode
    interval: float = SAMPLE_INTERVAL_S
    clock: Callable[[], float] = time.time
    _queues: set[asyncio.Queue[FeedEvent]] = field(default_factory=set)
    _task: asyncio.Task[None] | None = None
    _counts: dict[tuple[int, str], int] = field(default_factory=dict)
    _notes: list[tuple[str, str]] = field(default_factory=list)
    _last: Json | None = None

    @property
    def watching(self) -> bool:
        return bool(self._queues)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[FeedEvent]]:
        """A queue of events for one page; sampling runs while at least one is open."""
        queue: asyncio.Queue[FeedEvent] = asyncio.Queue(QUEUE_LIMIT)
        if not self._queues:
            self._start()
        self._queues.add(queue)
        if self._last is not None:
            queue.put_nowait(FeedEvent("state", self._state_event(self._last, [])))
        try:
            yield queue
        finally:
            self._queues.discard(queue)
            if not self._queues:
                await self._stop()

    def _start(self) -> None:
        self._counts.clear()
        self._notes.clear()
        self._last = None
        self.node.message_observer = self._observe
        self._task = asyncio.get_running_loop().create_task(self._sample_loop())

    async def _stop(self) -> None:
        self.node.message_observer = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _observe(self, messages: Sequence[Message]) -> None:
        for m in messages:
            key = (m.to, m.type.name)
            self._counts[key] = self._counts.get(key, 0) + 1
            note = _message_note(m.sender, m)
            if note is not None:
                self._notes.append(note)

    async def _sample_loop(self) -> None:
        last_sample = self.clock()
        while True:
            now = self.clock()
            self.sample(max(now - last_sample, 1e-3))
            last_sample = now
            await asyncio.sleep(self.interval)

    def sample(self, elapsed: float) -> None:
        """Read the node once and publish what changed; `elapsed` seconds since the last sample."""
        state = member_state(self.node)
        notes = self._notes + _changes(self._last, state)
        self._notes = []
        links: dict[int, Json] = {}
        for (to, type_name), count in self._counts.items():
            link = links.setdefault(to, {"from": state["id"], "to": to, "sent": 0, "types": {}})
            link["sent"] += count
            link["types"][type_name] = count
        self._counts = {}
        for link in links.values():
            link["rate"] = link["sent"] / elapsed
        self._last = state
        now = self.clock()
        self._publish(FeedEvent("state", self._state_event(state, list(links.values()))))
        for category, text in notes:
            self._publish(FeedEvent("timeline", {"time": now, "member": state["id"], "category": category,
                                                 "text": text}))

    def _state_event(self, state: Json, links: list[Json]) -> Json:
        return {"time": self.clock(), "member": state, "links": links}

    def _publish(self, event: FeedEvent) -> None:
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)
