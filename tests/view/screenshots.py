"""`make screenshots`: pictures of the Raft view for the README, from a real run of each feed.

    python -m tests.view.screenshots docs

Writes docs/raftview-sim.png (figure 8 at the step where 5@2 sits on a majority, uncommitted)
and docs/raftview-live.png (a three-member pyetcd cluster just after its leader was stopped).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from selenium.webdriver.support.ui import WebDriverWait

from raft.sim.scenarios import figure_8
from raft.sim.steps import record_scenario
from tests.cluster.cluster import Cluster
from tests.helpers.servers import REPO, free_port, run_etcdctl
from tests.view.browser import headless_chromium, member_rows

WAIT = 60.0


def sim_screenshot(out: Path) -> None:
    rec = record_scenario("figure-8", figure_8, "")
    step = next(s["step"] for s in rec.steps if s["text"] == "n3 appends 5@2 p1")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "raft.sim", "--scenario", "figure-8", "--view",
                             "--view-port", str(port)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        while "step through it at" not in proc.stdout.readline():
            pass
        with headless_chromium(1400, 1150) as driver:
            driver.get(f"http://127.0.0.1:{port}/debug/raft?scenario=figure-8&step={step}")
            WebDriverWait(driver, WAIT).until(lambda d: d.find_element("tag name", "body")
                                              .get_attribute("data-step") == str(step))
            driver.save_screenshot(str(out))
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def live_screenshot(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cluster = Cluster(Path(tmp))
        try:
            cluster.start(3)
            leader = cluster.leader()
            watched = next(m for m in cluster.running() if m is not leader)
            for i in range(20):
                run_etcdctl(watched.endpoint, "put", f"key{i}", "value")
            with headless_chromium(1400, 1150) as driver:
                driver.get(watched.client_url + "/debug/raft")
                wait = WebDriverWait(driver, WAIT)
                wait.until(lambda d: len(member_rows(d, keys=str)) == 3
                           and any(r["role"] == "leader" for r in member_rows(d, keys=str).values()))
                cluster.stop_member(leader)
                wait.until(lambda d: any(r["role"] == "unreachable" for r in member_rows(d, keys=str).values())
                           and any(r["role"] == "leader" for r in member_rows(d, keys=str).values()))
                for i in range(10):
                    run_etcdctl(watched.endpoint, "put", f"after{i}", "value")
                time.sleep(1.0)  # one more sample, so the arrows show the new leader's traffic
                driver.save_screenshot(str(out))
        finally:
            cluster.stop()


def main() -> int:
    docs = Path(sys.argv[1] if len(sys.argv) > 1 else "docs")
    docs.mkdir(parents=True, exist_ok=True)
    sim_screenshot(docs / "raftview-sim.png")
    live_screenshot(docs / "raftview-live.png")
    print(f"wrote {docs / 'raftview-sim.png'} and {docs / 'raftview-live.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
