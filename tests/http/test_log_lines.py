"""The log lines deployment scripts wait for, in order, from one member and from a 3-member cluster,
with --logger capnslog and --logger zap, found the same way in real etcd's logs and in pyetcd's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cluster.cluster import Cluster, wait_until
from tests.helpers.servers import ServerProcess, StartServer, run_etcdctl

BINARIES = ["etcd", "pyetcd"]


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


def start_lines(member: ServerProcess, logger: str, member_id: str) -> tuple[list[str], list[str]]:
    """The lines in the order a start logs them, and (etcd logs them from different goroutines
    after publishing) the cluster version's line, which only follows the publish line."""
    if logger == "zap":
        published = "published local member to cluster through raft"
        return (["added member", f"{member_id} became leader at term", f"elected leader {member_id} at term",
                 published, "serving client traffic insecurely; this is strongly discouraged!"],
                [published, "enabled capabilities for version"])
    published = f"published {{Name:{member.name} ClientURLs:[{member.client_url}]}}"
    return ([f"added member {member_id} [{member.peer_url}] to cluster", f"{member_id} became leader at term",
             f"elected leader {member_id} at term", published, "ready to serve client requests",
             f"serving insecure client requests on {member.endpoint}, this is strongly discouraged!"],
            [published, "enabled capabilities for version 3.4"])


def member_id_of(member: ServerProcess) -> str:
    status = json.loads(member.etcdctl("endpoint", "status", "-w", "json").stdout)[0]["Status"]
    return f"{int(status['header']['member_id']):x}"


@pytest.mark.parametrize("logger", ["capnslog", "zap"])
@pytest.mark.parametrize("binary", BINARIES)
def test_one_member_logs_etcds_start_lines_in_order(binary: str, logger: str, start_server: StartServer) -> None:
    member = start_server(binary, name="solo", extra_args=[f"--logger={logger}"])
    assert wait_until(lambda: "enabled capabilities" in member.log_path.read_text(errors="replace"), 10)
    in_order, after_publishing = start_lines(member, logger, member_id_of(member))
    assert_in_order(messages(member, logger), in_order)
    assert_in_order(messages(member, logger), after_publishing)


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
        removed = next(m for m in cluster.members if m is not leader)
        # Right after start the members are not yet "active" long enough for a strict reconfig check.
        assert wait_until(lambda: run_etcdctl(leader.endpoint, "member", "remove", ids[removed.name]).returncode == 0,
                          15)
        text = "removed member" if logger == "zap" else f"removed member {ids[removed.name]} from cluster"
        assert wait_until(lambda: any(text in line for line in messages(leader, logger)), 10)
    finally:
        cluster.stop()
