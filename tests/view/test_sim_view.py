"""The simulator's step-through: recorded steps match the simulator's own trace, and the page shows them."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from raft.sim.cluster import Cluster
from raft.sim.invariants import Violation
from raft.sim.scenarios import ABOUT, SCENARIOS, figure_8
from raft.sim.steps import record_scenario
from raft.sim.trace import Trace
from raft.sim.viewer import RunChoice, StepThroughServer, serve
from tests.helpers.servers import REPO, free_port
from tests.view.browser import headless_chromium, member_rows


def test_recorded_steps_are_the_trace_lines_with_a_rule_for_every_raft_step() -> None:
    trace = Trace(enabled=True)
    figure_8(trace)
    rec = record_scenario("figure-8", figure_8, ABOUT["figure-8"])
    assert [s["text"] for s in rec.steps] == [line.split("] ", 1)[1].strip() for line in trace.lines]
    assert rec.violation is None
    for s in rec.steps:
        if s["category"] not in ("note", "fault"):
            assert s["section"], f"step {s['step']} names no section: {s['text']}"
    # Figure 8's point: 5@2 sits on n1 and n3, yet n1 (leading term 4) does not commit it.
    held = next(s for s in rec.steps if s["text"] == "n3 appends 5@2 p1")
    n1 = next(m for m in held["members"] if m["id"] == 1)
    assert n1["role"] == "leader" and n1["term"] == 4 and n1["commit"] == 4


def test_every_scenario_records_and_says_what_to_watch() -> None:
    assert {"figure-8", "election", "leader-partition", "snapshot-catch-up", "membership-change",
            "leader-transfer"} <= set(SCENARIOS)
    for name, play in SCENARIOS.items():
        rec = record_scenario(name, play, ABOUT[name])
        assert rec.violation is None, name
        assert rec.about and len(rec.steps) > 20, name
    snap = record_scenario("snapshot-catch-up", SCENARIOS["snapshot-catch-up"], "")
    states = {p["state"] for s in snap.steps for m in s["members"] for p in m["progress"].values()}
    assert "snapshot" in states


def broken(trace: Trace | None) -> Cluster:
    """Figure 8, then a second leader for term 5 reported to the checker: a made-up safety violation."""
    c = figure_8(trace)
    c.note("a member claims a second leader for term 5")
    c.checker.on_leader(3, 5, c.members[3].storage)  # n2 already leads term 5
    c.note("never reached")
    return c


def test_a_violation_ends_the_recording_on_the_step_that_broke_it() -> None:
    rec = record_scenario("broken", broken, "")
    assert rec.violation is not None and "leader" in rec.violation
    assert rec.steps[-1]["category"] == "violation" and rec.steps[-1]["violation"] == rec.violation
    assert rec.steps[-2]["text"] == "a member claims a second leader for term 5"
    with pytest.raises(Violation):
        broken(None)


@pytest.fixture
def figure_8_viewer() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "raft.sim", "--scenario", "figure-8", "--view",
                             "--view-port", str(port)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        while line and "step through it at" not in line:
            line = proc.stdout.readline()
        assert line, "the viewer exited before serving"
        yield f"http://127.0.0.1:{port}/debug/raft"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_viewer_streams_the_recording_as_server_sent_events(figure_8_viewer: str) -> None:
    with urllib.request.urlopen(figure_8_viewer + "/events?scenario=figure-8", timeout=30) as r:
        assert r.headers["Content-Type"] == "text/event-stream"
        body = r.read().decode()
    rec = record_scenario("figure-8", figure_8, "")
    assert body.startswith("event: hello\n")
    assert body.count("event: step\n") == len(rec.steps)
    assert body.rstrip().split("\n")[-2] == "event: end"


@pytest.fixture
def broken_viewer() -> Iterator[str]:
    """The viewer serving the broken run, in-process on its own event loop thread."""
    port = free_port()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    choice = RunChoice(scenario="broken")
    server = StepThroughServer(choice, scenarios={"broken": broken}, about={"broken": "a made-up violation"})

    serving: list[asyncio.Task[None]] = []

    async def run() -> None:
        started = asyncio.Event()
        serving.append(asyncio.create_task(serve(choice, port, started, server)))
        await started.wait()
        ready.set()
        with contextlib.suppress(asyncio.CancelledError):
            await serving[0]

    thread = threading.Thread(target=lambda: loop.run_until_complete(run()), daemon=True)
    thread.start()
    try:
        assert ready.wait(30), "the viewer did not start"
        yield f"http://127.0.0.1:{port}/debug/raft"
    finally:
        for task in serving:
            loop.call_soon_threadsafe(task.cancel)
        thread.join(timeout=10)
        loop.close()


def test_playing_a_run_that_breaks_a_property_stops_on_the_breaking_step(broken_viewer: str) -> None:
    rec = record_scenario("broken", broken, "")
    last = len(rec.steps) - 1
    with headless_chromium() as driver:
        driver.get(broken_viewer + "?step=70")
        _shown(driver, 70)
        driver.execute_script("document.querySelector('#speed').value = '20';")
        driver.find_element(By.ID, "play").click()
        _shown(driver, last)
        WebDriverWait(driver, 20).until(lambda d: d.find_element(By.ID, "play").text == "play")
        assert driver.find_element(By.ID, "narration").text.startswith(f"VIOLATION at step {last}: ")
        driver.find_element(By.ID, "forward").click()  # nothing lies beyond the breaking step
        assert driver.find_element(By.TAG_NAME, "body").get_attribute("data-step") == str(last)


def _shown(driver: Any, step: int) -> dict[int, dict[str, str]]:
    WebDriverWait(driver, 20).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-step")
                                    == str(step))
    return member_rows(driver)


def _expected(step: dict[str, Any]) -> dict[int, dict[str, str]]:
    return {m["id"]: {"role": m["role"], "term": str(m["term"]), "commit": str(m["commit"]),
                      "last": str(m["last_index"]), "leader": str(m["leader"])} for m in step["members"]}


def test_the_page_steps_through_figure_8_as_the_simulator_recorded_it(figure_8_viewer: str) -> None:
    rec = record_scenario("figure-8", figure_8, "")
    texts = [s["text"] for s in rec.steps]
    chosen = [texts.index("n1 becomes LEADER of term 4"), texts.index("n3 appends 5@2 p1"),
              texts.index("n2 becomes LEADER of term 5"), len(texts) - 1]
    with headless_chromium() as driver:
        for index in chosen:
            driver.get(f"{figure_8_viewer}?scenario=figure-8&step={index}")
            shown = _shown(driver, index)
            for member_id, want in _expected(rec.steps[index]).items():
                got = {k: shown[member_id][k] for k in want}
                assert got == want, f"step {index} ({texts[index]}), n{member_id}"
            section = driver.find_element(By.ID, "rule").get_attribute("data-section")
            assert section == (rec.steps[index]["section"] or "")
        # One step back and one forward with the buttons.
        start = chosen[1]
        driver.get(f"{figure_8_viewer}?scenario=figure-8&step={start}")
        _shown(driver, start)
        driver.find_element(By.ID, "back").click()
        assert _expected(rec.steps[start - 1]) == {
            k: {f: v[f] for f in ("role", "term", "commit", "last", "leader")}
            for k, v in _shown(driver, start - 1).items()}
        driver.find_element(By.ID, "forward").click()
        driver.find_element(By.ID, "forward").click()
        _shown(driver, start + 1)
        assert texts[start + 1] in driver.find_element(By.ID, "narration").text
