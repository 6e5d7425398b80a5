"""Runtime reconfiguration of a pyetcd cluster, driven with the real etcdctl."""

from __future__ import annotations

import time

from tests.cluster.cluster import wait_until
from tests.cluster.conftest import MakeCluster
from tests.helpers.servers import run_etcdctl

HEALTH_INTERVAL_S = 5.0
"""etcd refuses to reconfigure until peers have been connected this long."""



def test_learner_is_refused_promotion_until_in_sync_then_promoted(cluster: MakeCluster) -> None:
    members = cluster(3)
    learner, learner_id = members.add_member("learner", learner=True, start=False)
    listing = members.etcdctl("member", "list")
    assert f"{learner_id:x}, unstarted, , {learner.peer_url}, , true" in listing

    refused = run_etcdctl(members.endpoints(), "member", "promote", f"{learner_id:x}")
    assert refused.returncode != 0
    assert "etcdserver: can only promote a learner member which is in sync with leader" in refused.stderr

    members.etcdctl("put", "/before-promote", "v")
    learner.start(wait=False)
    assert wait_until(lambda: f"{learner_id:x}, started, learner" in members.etcdctl("member", "list"))

    promoted = ""

    def promote() -> bool:
        nonlocal promoted
        result = run_etcdctl(members.endpoints(), "member", "promote", f"{learner_id:x}")
        promoted = result.stdout + result.stderr
        return result.returncode == 0

    assert wait_until(promote), promoted
    assert f"Member {learner_id:16x} promoted in cluster" in promoted
    assert f"{learner_id:x}, started, learner, {learner.peer_url}, {learner.client_url}, false" in \
        members.etcdctl("member", "list")
    learner.wait_healthy()
    assert learner.etcdctl("get", "/before-promote", "--print-value-only").stdout.strip() == "v"


def test_removing_the_leader_hands_over_and_the_rest_keep_serving(cluster: MakeCluster) -> None:
    members = cluster(3)
    leader = members.leader()
    leader_id = members.member_id(leader)
    others = [m for m in members.running() if m is not leader]
    removed = run_etcdctl(others[0].endpoint, "member", "remove", f"{leader_id:x}")
    if "unhealthy cluster" in removed.stderr:  # peers connected for less than the health interval
        time.sleep(HEALTH_INTERVAL_S)
        removed = run_etcdctl(others[0].endpoint, "member", "remove", f"{leader_id:x}")
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.startswith(f"Member {leader_id:16x} removed from cluster")
    assert leader.process is not None
    assert wait_until(lambda: leader.process is not None and leader.process.poll() is not None), \
        "the removed leader did not stop"
    assert "permanently removed from the cluster" in leader.log_tail()
    assert run_etcdctl(members.endpoints(others), "put", "/after-leader-removal", "ok").stdout.strip() == "OK"
    for member in others:
        assert member.etcdctl("get", "/after-leader-removal", "--print-value-only").stdout.strip() == "ok"
    assert f"{leader_id:x}" not in members.etcdctl("member", "list", member=others[0])


def test_follower_linearizable_read_sees_the_write_the_leader_just_acknowledged(cluster: MakeCluster) -> None:
    members = cluster(3)
    leader = members.leader()
    follower = next(m for m in members.running() if m is not leader)
    for round_number in range(20):
        assert leader.etcdctl("put", "/register", f"v{round_number}").stdout.strip() == "OK"
        seen = follower.etcdctl("get", "/register", "--print-value-only").stdout.strip()
        assert seen == f"v{round_number}"


def test_move_leader_transfers_leadership_to_the_chosen_member(cluster: MakeCluster) -> None:
    members = cluster(3)
    leader = members.leader()
    target = next(m for m in members.running() if m is not leader)
    target_id, leader_id = members.member_id(target), members.member_id(leader)
    moved = run_etcdctl(members.endpoints(), "move-leader", f"{target_id:x}")
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.strip() == f"Leadership transferred from {leader_id:x} to {target_id:x}"
    assert wait_until(lambda: members.leader_id() == target_id)


def test_reconfiguration_that_would_risk_quorum_is_refused_as_unhealthy(cluster: MakeCluster) -> None:
    members = cluster(3)
    time.sleep(HEALTH_INTERVAL_S)  # so that only the stopped member counts as unhealthy
    down = members.followers()[0]
    down_id = members.member_id(down)
    members.stop_member(down)
    alive = members.running()
    # The others notice the stopped member when its stream breaks on their next send.
    assert wait_until(lambda: run_etcdctl(alive[0].endpoint, "put", "/noticed", "x").returncode == 0)
    time.sleep(1.0)
    added = run_etcdctl(members.endpoints(alive), "member", "add", "extra", "--peer-urls=http://127.0.0.1:1")
    assert added.returncode != 0 and "etcdserver: unhealthy cluster" in added.stderr
    # Removing a running member now would leave one of three: refused too.
    victim_id = members.member_id(alive[1])
    removed = run_etcdctl(alive[0].endpoint, "member", "remove", f"{victim_id:x}")
    assert removed.returncode != 0 and "etcdserver: unhealthy cluster" in removed.stderr
    # Removing the member that is down is allowed: it is not part of the active quorum.
    gone = run_etcdctl(alive[0].endpoint, "member", "remove", f"{down_id:x}")
    assert gone.returncode == 0, gone.stderr


def test_member_update_changes_peer_urls(cluster: MakeCluster) -> None:
    members = cluster(3)
    member = members.running()[2]
    member_id = members.member_id(member)
    updated = members.etcdctl("member", "update", f"{member_id:x}", "--peer-urls=http://127.0.0.1:1999")
    assert updated.startswith(f"Member {member_id:16x} updated in cluster")
    assert "http://127.0.0.1:1999" in members.etcdctl("member", "list")
