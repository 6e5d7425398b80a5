"""The live Raft view of a three-member pyetcd cluster in headless Chromium, and its flag."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.support.ui import WebDriverWait

from tests.cluster.cluster import Cluster
from tests.helpers.servers import free_port
from tests.view.browser import headless_chromium, member_rows

WAIT = 60.0  # generous for a shared 2-core machine; nothing asserts on timings


@pytest.fixture
def three_members(tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path / "cluster")
    try:
        yield cluster.start(3)
    finally:
        cluster.stop()


def _leader_rows(rows: dict[str, dict[str, str]]) -> list[str]:
    return [member for member, row in rows.items() if row["role"] == "leader"]


def test_the_live_page_shows_the_whole_cluster_and_a_new_leader_after_the_old_one_dies(
        three_members: Cluster) -> None:
    cluster = three_members
    leader = cluster.leader()
    old_id = f"{cluster.member_id(leader):x}"
    watched = next(m for m in cluster.running() if m is not leader)
    with headless_chromium() as driver:
        driver.get(watched.client_url + "/debug/raft")
        wait = WebDriverWait(driver, WAIT, poll_frequency=0.2)

        def rows() -> dict[str, dict[str, str]]:
            return {str(k): v for k, v in member_rows(driver, keys=str).items()}

        # Every member, reached through the member list, with the one leader they agree on.
        wait.until(lambda d: len(rows()) == 3
                   and all(r["role"] not in ("unreachable", "connecting") for r in rows().values())
                   and _leader_rows(rows()) == [old_id])
        assert all(r["leader"] == old_id for r in rows().values())
        assert driver.execute_script("return document.querySelectorAll('#progress tbody tr').length") == 3

        cluster.stop_member(leader)
        wait.until(lambda d: rows()[old_id]["role"] == "unreachable"
                   and len(_leader_rows(rows())) == 1 and _leader_rows(rows())[0] != old_id)
        new_id = _leader_rows(rows())[0]
        assert new_id == f"{cluster.leader_id():x}"
        # The timeline names members as the member list does (m0, m1, m2), not by their hex IDs.
        new_name = driver.execute_script(
            f"return document.querySelector('#members tr[data-member=\"{new_id}\"] td').textContent")
        timeline = driver.execute_script("return document.querySelector('#timeline').innerText")
        assert f"sees {new_name} as leader" in timeline


def test_the_flag_turns_the_page_off(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path / "off", extra_args=["--enable-raft-view=false"])
    metrics_port = free_port()
    on = Cluster(tmp_path / "on", extra_args=[f"--listen-metrics-urls=http://127.0.0.1:{metrics_port}"])
    try:
        member = cluster.start(1).members[0]
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(member.client_url + "/debug/raft", timeout=10)
        assert refused.value.code == 404
        on.start(1)
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/debug/raft", timeout=10) as page:
            assert "raftview.js" in page.read().decode()
    finally:
        cluster.stop()
        on.stop()
