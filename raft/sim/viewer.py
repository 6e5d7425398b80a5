"""`python -m raft.sim … --view`: serve the Raft view page fed by a recorded simulation.

A small aiohttp server on 127.0.0.1 serves the page (raft/view/page) under /debug/raft,
the same path a live member uses, and at /debug/raft/events streams one recorded run as
server-sent events: a `hello` (what the run is, the scenarios one click away), then every
step (steps.py), then `end`. The page steps through them locally, so stepping back and
forth costs the server nothing. `?scenario=NAME` or `?seed=N` picks another run.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from raft.sim.cluster import Cluster
from raft.sim.scenarios import ABOUT, SCENARIOS
from raft.sim.steps import Recording, record_scenario, record_seed
from raft.sim.trace import Trace
from raft.view import PAGE_DIR, PAGE_FILES

VIEW_HOST = "127.0.0.1"
DEFAULT_VIEW_PORT = 2390
STEPS_PER_WRITE = 50


@dataclass(frozen=True, slots=True)
class RunChoice:
    """Which recording to serve: a scenario by name, or a seeded schedule."""

    scenario: str | None = None
    seed: int = 0
    steps: int = 400
    nodes: int = 3
    driver: bool = False

    @property
    def key(self) -> tuple[object, ...]:
        return (self.scenario, self.seed, self.steps, self.nodes, self.driver)


Scenario = Callable[[Trace | None], Cluster]


def sse(event: str, data: Any) -> bytes:
    """One server-sent event; JSON never contains a raw newline, so one data line suffices."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


@dataclass(slots=True)
class StepThroughServer:
    """Serves the page and the recordings; recordings are made once per run and kept."""

    default: RunChoice
    scenarios: dict[str, Scenario] = field(default_factory=lambda: dict(SCENARIOS))
    about: dict[str, str] = field(default_factory=lambda: dict(ABOUT))
    recordings: dict[tuple[object, ...], Recording] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def recording(self, choice: RunChoice) -> Recording:
        async with self._lock:
            found = self.recordings.get(choice.key)
            if found is None:
                found = await asyncio.to_thread(self.record, choice)
                self.recordings[choice.key] = found
            return found

    def record(self, choice: RunChoice) -> Recording:
        if choice.scenario is not None:
            name = choice.scenario
            return record_scenario(name, self.scenarios[name], self.about.get(name, ""))
        return record_seed(choice.seed, choice.steps, choice.nodes, choice.driver)

    def choice_for(self, request: web.Request) -> RunChoice:
        scenario = request.query.get("scenario")
        if scenario is not None:
            if scenario not in self.scenarios:
                known = ", ".join(sorted(self.scenarios))
                raise web.HTTPNotFound(text=f"no scenario {scenario!r}; known: {known}\n")
            return RunChoice(scenario=scenario)
        seed = request.query.get("seed")
        if seed is not None:
            try:
                return RunChoice(seed=int(seed), steps=self.default.steps, nodes=self.default.nodes,
                                 driver=self.default.driver)
            except ValueError:
                raise web.HTTPBadRequest(text="seed must be an integer\n") from None
        return self.default

    async def page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(PAGE_DIR / "index.html", headers={"Content-Type": "text/html; charset=utf-8"})

    async def asset(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in PAGE_FILES:
            raise web.HTTPNotFound()
        return web.FileResponse(PAGE_DIR / name, headers={"Content-Type": PAGE_FILES[name] + "; charset=utf-8"})

    async def events(self, request: web.Request) -> web.StreamResponse:
        choice = self.choice_for(request)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        scenarios = [{"name": name, "about": self.about.get(name, "")} for name in sorted(self.scenarios)]
        rec = await self.recording(choice)
        await response.write(sse("hello", {"mode": "sim", "title": rec.title, "about": rec.about,
                                           "scenarios": scenarios, "current": choice.scenario}))
        for start in range(0, len(rec.steps), STEPS_PER_WRITE):
            chunk = b"".join(sse("step", s) for s in rec.steps[start:start + STEPS_PER_WRITE])
            await response.write(chunk)
        await response.write(sse("end", {"steps": len(rec.steps), "violation": rec.violation}))
        await response.write_eof()
        return response

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", _redirect)
        app.router.add_get("/debug/raft", self.page)
        app.router.add_get("/debug/raft/events", self.events)
        app.router.add_get("/debug/raft/{name}", self.asset)
        return app


async def _redirect(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/debug/raft")


async def serve(choice: RunChoice, port: int, ready: asyncio.Event | None = None,
                server: StepThroughServer | None = None) -> None:
    """Serve until cancelled; prints the address to open."""
    server = server or StepThroughServer(choice)
    await server.recording(choice)  # record before announcing, so a violation is reported at once
    runner = web.AppRunner(server.app())
    await runner.setup()
    site = web.TCPSite(runner, VIEW_HOST, port)
    await site.start()
    rec = server.recordings[choice.key]
    outcome = f"VIOLATION {rec.violation}" if rec.violation else "no violation"
    print(f"{rec.title}: {len(rec.steps)} steps, {outcome}", flush=True)
    print(f"step through it at http://{VIEW_HOST}:{port}/debug/raft (Ctrl-C stops)", flush=True)
    if ready is not None:
        ready.set()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
