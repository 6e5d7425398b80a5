"""/debug/raft on a member: the Raft view page, and its event feed for the whole cluster.

`/debug/raft/events?scope=member` streams this member's own collector (raft/view/live.py).
`/debug/raft/events` (the page's feed) streams the cluster: this member's view merged with
every other member's `scope=member` feed, reached through the client URLs of the member list,
so a page opened on any member shows all of them; a member whose feed cannot be reached is
shown as unreachable, with the last state it reported. Everything here only reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from pyetcd.membership import Member
from pyetcd.tlsconfig import TLSInfo
from raft.node import RaftNode
from raft.view import PAGE_DIR, PAGE_FILES
from raft.view.live import FeedEvent, RaftViewCollector

log = logging.getLogger("pyetcd.raftview")
Json = dict[str, Any]
CLUSTER_STATE_INTERVAL_S = 0.5
PEER_RETRY_S = 1.0


def sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def client_ssl_context(tls: TLSInfo) -> ssl.SSLContext:
    """How this member dials another's https client URL: the client CA, and our certificate if any."""
    context = ssl.create_default_context(cafile=tls.trusted_ca_file or None)
    if tls.self_cert:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if tls.cert_file and tls.key_file:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    return context


def _hex(member_id: int) -> str | int:
    return f"{member_id:x}" if member_id else 0


def page_member(state: Json) -> Json:
    """Member IDs as etcd prints them (hex strings): 64-bit numbers do not survive JavaScript's floats."""
    out = dict(state)
    for key in ("id", "vote", "leader"):
        out[key] = _hex(int(state.get(key) or 0))
    out["voters"] = [_hex(v) for v in state.get("voters", [])]
    out["learners"] = [_hex(v) for v in state.get("learners", [])]
    out["progress"] = {_hex(int(k)): v for k, v in state.get("progress", {}).items()}
    return out


def page_link(link: Json) -> Json:
    return {**link, "from": _hex(int(link["from"])), "to": _hex(int(link["to"]))}


@dataclass(slots=True)
class _ClusterFeed:
    """One page's merged view: the latest state of each member, and where timeline lines go."""

    out: asyncio.Queue[bytes]
    members: dict[int, Json]
    links: dict[int, list[Json]]

    def on_event(self, member_id: int, name: str, data: Json) -> None:
        if name == "state":
            state = dict(data["member"])
            state["name"] = self.members.get(member_id, {}).get("name", "")
            self.members[member_id] = state
            self.links[member_id] = data["links"]
        elif name == "timeline":
            data = {**data, "member": _hex(int(data.get("member") or 0))}
            if self.out.full():
                self.out.get_nowait()
            self.out.put_nowait(sse("timeline", data))

    def unreachable(self, member_id: int, why: str) -> None:
        state = self.members.get(member_id)
        if state is not None and state.get("status") == "up":
            state["status"] = "unreachable"
            self.on_event(member_id, "timeline", {"time": time.time(), "member": member_id, "category": "fault",
                                                  "text": f"{state.get('name') or member_id}'s feed is "
                                                          f"unreachable: {why}"})
        self.links.pop(member_id, None)


@dataclass(slots=True)
class RaftViewRoutes:
    """The /debug/raft routes of one member (client URLs and --listen-metrics-urls)."""

    node: Callable[[], RaftNode]
    members: Callable[[], Sequence[Member]]
    client_tls: TLSInfo
    _collector: RaftViewCollector | None = None

    @property
    def collector(self) -> RaftViewCollector:
        """Made on the first page's request: the node exists only once the member has started."""
        node = self.node()
        if self._collector is None or self._collector.node is not node:
            self._collector = RaftViewCollector(node)
        return self._collector

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/debug/raft", self.page)
        app.router.add_get("/debug/raft/events", self.events)
        app.router.add_get("/debug/raft/{name}", self.asset)

    async def page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(PAGE_DIR / "index.html", headers={"Content-Type": "text/html; charset=utf-8"})

    async def asset(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in PAGE_FILES:
            raise web.HTTPNotFound(text="404 page not found\n")
        return web.FileResponse(PAGE_DIR / name, headers={"Content-Type": PAGE_FILES[name] + "; charset=utf-8"})

    async def events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        if request.query.get("scope") == "member":
            await self._member_feed(response)
        else:
            await self._cluster_feed(response)
        return response

    async def _member_feed(self, response: web.StreamResponse) -> None:
        async with self.collector.subscribe() as queue:
            while True:
                event = await queue.get()
                await response.write(sse(event.name, event.data))

    async def _cluster_feed(self, response: web.StreamResponse) -> None:
        me = self.node().config.member_id
        names = {m.id: m.name for m in self.members()}
        await response.write(sse("hello", {
            "mode": "live", "title": f"cluster seen from {names.get(me) or f'{me:x}'}",
            "about": "Live: each member's Raft state, sampled while this page is open; arrows are messages "
                     "per second each member sends. A member whose feed cannot be reached shows as unreachable.",
            "scenarios": []}))
        feed = _ClusterFeed(asyncio.Queue(256), {}, {})
        tasks = [asyncio.create_task(self._follow_own(feed, me))]
        followed: dict[int, asyncio.Task[None]] = {}
        try:
            while True:
                for member in self.members():
                    feed.members.setdefault(member.id, {"id": member.id, "status": "connecting",
                                                        "role": "unknown", "progress": {}})
                    feed.members[member.id]["name"] = member.name
                    if member.id != me and member.id not in followed:
                        followed[member.id] = asyncio.create_task(self._follow_peer(feed, member))
                while not feed.out.empty():
                    await response.write(feed.out.get_nowait())
                known = {m.id for m in self.members()}
                members = [page_member(s) for i, s in sorted(feed.members.items()) if i in known]
                links = [page_link(link) for i, ls in feed.links.items() if i in known for link in ls]
                await response.write(sse("state", {"time": time.time(), "members": members, "links": links}))
                await asyncio.sleep(CLUSTER_STATE_INTERVAL_S)
        finally:
            for task in [*tasks, *followed.values()]:
                task.cancel()
            for task in [*tasks, *followed.values()]:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _follow_own(self, feed: _ClusterFeed, me: int) -> None:
        async with self.collector.subscribe() as queue:
            while True:
                event: FeedEvent = await queue.get()
                feed.on_event(me, event.name, event.data)

    async def _follow_peer(self, feed: _ClusterFeed, member: Member) -> None:
        """Read another member's own feed, reconnecting while it is down or cut off."""
        timeout = aiohttp.ClientTimeout(total=None, connect=2.0, sock_read=5.0)
        while True:
            why = "no client URL"
            for url in member.client_urls:
                secure = url.startswith("https://")
                if not (secure or url.startswith("http://")):
                    continue
                try:
                    ssl_context: ssl.SSLContext | bool = client_ssl_context(self.client_tls) if secure else False
                    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(
                            url.rstrip("/") + "/debug/raft/events?scope=member", ssl=ssl_context) as answer:
                        if answer.status != 200:
                            why = f"HTTP {answer.status} from {url}"
                            continue
                        await self._read_feed(feed, member.id, answer)
                        why = f"{url} closed the feed"
                except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as err:
                    why = f"{url}: {err.__class__.__name__}"
            feed.unreachable(member.id, why)
            await asyncio.sleep(PEER_RETRY_S)

    @staticmethod
    async def _read_feed(feed: _ClusterFeed, member_id: int, answer: aiohttp.ClientResponse) -> None:
        name = ""
        async for raw in answer.content:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("event: "):
                name = line[len("event: "):]
            elif line.startswith("data: ") and name:
                feed.on_event(member_id, name, json.loads(line[len("data: "):]))
                name = ""
