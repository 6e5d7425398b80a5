"""The log lines deployment scripts wait for, in order, from one member and from a 3-member cluster,
with --logger capnslog and --logger zap, found the same way in real etcd's logs and in pyetcd's.

The cluster version's lines come from the leader deciding it and every member applying it, after the
cluster has started; until then `/version` says `not_decided`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cluster.cluster import Cluster, wait_until
from tests.helpers.servers import ServerProcess, StartServer, run_etcdctl
from tests.http.httpget import http_get

BINARIES = ["etcd", "pyetcd"]
VERSION_DECIDED = b'{"etcdserver":"3.4.23","etcdcluster":"3.4.0"}'


def zap_entries(member: ServerProcess) -> list[dict[str, object]]:
    lines = member.log_path.read_text(errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def messages(member: ServerProcess, logger: str) -> list[str]:
    lines = member.log_path.read_text(errors="replace").splitlines()
    if logger == "zap":
        return [json.loads(line)["msg"] for line in lines if line.startswith("{")]
    return lines


def assert_in_order(found: list[str], wanted: list[str]) -> None:
    """Each wanted text appears in a line after the line of the one before it."""
    position = -1
    for text in wanted:
        later = [i for i, line in enumerate(found) if i > position and text in line]
        assert later, f"{text!r} not found after line {position}:\n" + "\n".join(found)
        position = later[0]


def start_lines(member: ServerProcess, logger: str, member_id: str) -> list[str]:
    """The lines in the order a start logs them. The cluster version's lines follow the election too,
    but etcd logs them from another goroutine than the publish line, in either order."""
    if logger == "zap":
        return ["added member", f"{member_id} became leader at term", f"elected leader {member_id} at term",
                "published local member to cluster through raft",
                "serving client traffic insecurely; this is strongly discouraged!"]
    return [f"added member {member_id} [{member.peer_url}] to cluster", f"{member_id} became leader at term",
            f"elected leader {member_id} at term", f"published {{Name:{member.name} ClientURLs:[{member.client_url}]}}",
            "ready to serve client requests",
            f"serving insecure client requests on {member.endpoint}, this is strongly discouraged!"]


def cluster_version_lines(logger: str) -> list[str]:
    """Start, the leader's decision, and applying it (etcd's s.start, updateClusterVersion, SetVersion,
    UpdateCapability), in this order."""
    if logger == "zap":
        return ["starting etcd server", "setting up initial cluster version", "set initial cluster version",
                "enabled capabilities for version"]
    return ["starting server... [version: 3.4.23, cluster version: to_be_decided]",
            "setting up the initial cluster version to 3.4", "set the initial cluster version to 3.4",
            "enabled capabilities for version 3.4"]


def applied_version_lines(member: ServerProcess, logger: str) -> list[str]:
    if logger == "zap":
        return ["set initial cluster version", "enabled capabilities for version"]
    return ["etcdserver/membership: set the initial cluster version to 3.4",
            "etcdserver/api: enabled capabilities for version 3.4"]


def assert_zap_version_fields(member: ServerProcess, member_id: str) -> None:
    entries = {str(e["msg"]): e for e in zap_entries(member)}
    applied = entries["set initial cluster version"]
    assert (applied["local-member-id"], applied["cluster-version"]) == (member_id, "3.4"), applied
    assert "cluster-id" in applied, applied
    assert entries["enabled capabilities for version"]["cluster-version"] == "3.4"


def member_id_of(member: ServerProcess) -> str:
    status = json.loads(member.etcdctl("endpoint", "status", "-w", "json").stdout)[0]["Status"]
    return f"{int(status['header']['member_id']):x}"


@pytest.mark.parametrize("logger", ["capnslog", "zap"])
@pytest.mark.parametrize("binary", BINARIES)
def test_one_member_logs_etcds_start_lines_in_order(binary: str, logger: str, start_server: StartServer) -> None:
    member = start_server(binary, name="solo", extra_args=[f"--logger={logger}"])
    assert wait_until(lambda: "enabled capabilities" in member.log_path.read_text(errors="replace"), 10)
    member_id = member_id_of(member)
    assert_in_order(messages(member, logger), start_lines(member, logger, member_id))
    assert_in_order(messages(member, logger), cluster_version_lines(logger))
    if logger == "zap":
        assert entries_with(member, "setting up initial cluster version")[0]["cluster-version"] == "3.4"
        assert_zap_version_fields(member, member_id)
    assert http_get(member.client_url + "/version").body == VERSION_DECIDED


def entries_with(member: ServerProcess, msg: str) -> list[dict[str, object]]:
    return [e for e in zap_entries(member) if e["msg"] == msg]


@pytest.mark.parametrize(("binary", "logger"), [("etcd", "capnslog"), ("pyetcd", "capnslog"), ("pyetcd", "zap")])
def test_three_members_log_election_membership_and_removal(binary: str, logger: str, tmp_path: Path) -> None:
    cluster = Cluster(tmp_path / binary, binary=binary, extra_args=[f"--logger={logger}"])
    try:
        cluster.start(3)
        leader = cluster.leader()
        leader_id = f"{cluster.leader_id():x}"
        ids = {m.name: member_id_of(m) for m in cluster.members}
        for member in cluster.members:
            found = messages(member, logger)
            for other in cluster.members:
                added = "added member" if logger == "zap" else f"added member {ids[other.name]} [{other.peer_url}]"
                assert_in_order(found, [added, f"elected leader {leader_id} at term"])
            published = "published local member" if logger == "zap" else f"published {{Name:{member.name} "
            assert_in_order(found, [f"elected leader {leader_id} at term", published])
        assert_in_order(messages(leader, logger), [f"{leader_id} became leader at term"])
        # The leader decides the cluster version once every member answers; each member applies it.
        for member in cluster.members:
            assert wait_until(lambda m=member: http_get(m.client_url + "/version").body == VERSION_DECIDED, 15)
            assert_in_order(messages(member, logger), applied_version_lines(member, logger))
            if logger == "zap":
                assert_zap_version_fields(member, ids[member.name])
        setting_up = "setting up initial cluster version" if logger == "zap" else \
            "etcdserver: setting up the initial cluster version to 3.4"
        assert [m.name for m in cluster.members if any(setting_up in line for line in messages(m, logger))] == \
            [leader.name]
        removed = next(m for m in cluster.members if m is not leader)
        # Right after start the members are not yet "active" long enough for a strict reconfig check.
        assert wait_until(lambda: run_etcdctl(leader.endpoint, "member", "remove", ids[removed.name]).returncode == 0,
                          15)
        text = "removed member" if logger == "zap" else f"removed member {ids[removed.name]} from cluster"
        assert wait_until(lambda: any(text in line for line in messages(leader, logger)), 10)
    finally:
        cluster.stop()
