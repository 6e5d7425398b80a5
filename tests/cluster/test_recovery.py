"""Members that stop and come back: with their data, after many writes and compactions, or not at all."""

from __future__ import annotations

import signal
import subprocess

import grpc

from etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.cluster.cluster import wait_until
from tests.cluster.conftest import MakeCluster
from tests.helpers.servers import PYETCD_BINARY, free_port, run_etcdctl


def put_many(endpoint: str, count: int, prefix: str) -> None:
    with grpc.insecure_channel(endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        for i in range(count):
            kv.Put(rpc_pb2.PutRequest(key=f"{prefix}{i:05d}".encode(), value=f"value-{i}".encode()), timeout=10)


def hashkv_by_endpoint(endpoints: str) -> dict[str, str]:
    lines = run_etcdctl(endpoints, "endpoint", "hashkv").stdout.strip().splitlines()
    return dict(line.split(", ", 1) for line in lines)


def test_member_down_during_writes_and_compaction_catches_up_by_snapshot(cluster: MakeCluster) -> None:
    members = cluster(3, extra_args=["--snapshot-count=100", "--experimental-snapshot-catchup-entries=20"])
    laggard = members.followers()[0]
    members.stop_member(laggard)
    alive = members.running()
    put_many(alive[0].endpoint, 400, "/catchup/")
    revision = int(members.status(alive[0])["header"]["revision"])  # type: ignore[index]
    members.etcdctl("compact", str(revision - 50))
    put_many(alive[0].endpoint, 10, "/after-compaction/")

    laggard.start(wait=True, timeout=60)
    assert "installing snapshot" in laggard.log_tail(200), "the laggard should have caught up by snapshot"
    assert laggard.etcdctl("get", "/catchup/00399", "--print-value-only").stdout.strip() == "value-399"
    keys = laggard.etcdctl("get", "/catchup/", "--prefix", "--keys-only").stdout.split()
    assert len(keys) == 400
    every = members.endpoints()
    assert wait_until(lambda: len(set(hashkv_by_endpoint(every).values())) == 1), hashkv_by_endpoint(every)
    old = run_etcdctl(laggard.endpoint, "get", "/catchup/00001", f"--rev={revision - 60}")
    assert "etcdserver: mvcc: required revision has been compacted" in old.stderr


def test_restarted_member_keeps_its_identity_and_ignores_initial_cluster_flags(cluster: MakeCluster) -> None:
    members = cluster(3)
    member = members.followers()[0]
    member_id = members.member_id(member)
    members.etcdctl("put", "/kept", "yes")
    members.stop_member(member)
    # etcd ignores --initial-cluster* once a data dir exists; so must we.
    member.extra_args = [*member.extra_args, "--initial-cluster-token=something-else"]
    member.start(wait=True, timeout=60)
    assert members.member_id(member) == member_id
    assert member.etcdctl("get", "/kept", "--print-value-only").stdout.strip() == "yes"
    assert "ignoring --initial-cluster flags" in member.log_tail(200)


def test_joining_an_existing_cluster_that_cannot_be_reached_fails_fast(tmp_path: object) -> None:
    peer, client = free_port(), free_port()
    nowhere = free_port()
    result = subprocess.run(
        [str(PYETCD_BINARY), "--name", "lonely", "--data-dir", f"{tmp_path}/lonely.etcd",
         "--listen-client-urls", f"http://127.0.0.1:{client}", "--advertise-client-urls",
         f"http://127.0.0.1:{client}", "--listen-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}", "--initial-cluster-state", "existing",
         "--initial-cluster", f"lonely=http://127.0.0.1:{peer},other=http://127.0.0.1:{nowhere}"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "could not retrieve cluster information from the given URLs" in result.stderr


def test_leader_stopped_with_sigterm_hands_over_before_it_exits(cluster: MakeCluster) -> None:
    members = cluster(3)
    leader = members.leader()
    leader_id = members.member_id(leader)
    members.stop_member(leader)  # SIGTERM
    assert leader.process is not None and leader.process.returncode == -signal.SIGTERM
    assert "transfers leadership to" in leader.log_tail(50)
    others = members.running()
    new_leader = members.leader_id()
    assert new_leader not in (0, leader_id)
    assert run_etcdctl(members.endpoints(others), "put", "/after-handover", "ok").stdout.strip() == "OK"
