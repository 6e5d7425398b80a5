"""The generated etcdpb code is current and speaks etcd 3.4's wire format.

Field numbers and method paths are checked against etcd 3.4's, and a real etcd answers through our stubs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import Descriptor

from etcdpb.authpb import auth_pb2
from etcdpb.etcdserverpb import raft_internal_pb2, rpc_pb2, rpc_pb2_grpc
from etcdpb.mvccpb import kv_pb2
from etcdpb.v3electionpb import v3election_pb2
from etcdpb.v3lockpb import v3lock_pb2
from tests.helpers.servers import ServerProcess, free_port

REPO = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO / "proto"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2_grpc.py", "_pb2.pyi", "_pb2_grpc.pyi")


def _proto_files() -> list[str]:
    return sorted(str(p.relative_to(REPO)) for p in (PROTO_ROOT / "etcdpb").rglob("*.proto"))


def _makefile_output_kinds() -> list[str]:
    """The protoc `--X_out=proto` outputs `make proto` asks for, so this test regenerates the same way."""
    recipe = (REPO / "Makefile").read_text().split("\nproto:", 1)[1].split("\n\n", 1)[0]
    kinds = re.findall(r"--(\w+)_out=proto", recipe)
    assert "python" in kinds, "could not read the protoc outputs from the Makefile's proto target"
    return kinds


def _generated(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.name.endswith(GENERATED_SUFFIXES))


def test_committed_generated_code_matches_the_proto_sources() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        env = dict(os.environ)
        # protoc finds the protoc-gen-mypy plugins on PATH, as `make proto` arranges.
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        outputs = [f"--{kind}_out={out}" for kind in _makefile_output_kinds()]
        subprocess.run(
            [sys.executable, "-m", "grpc_tools.protoc", "-Iproto", *outputs, *_proto_files()],
            cwd=REPO, env=env, check=True, capture_output=True,
        )
        fresh = _generated(out)
        assert fresh == _generated(PROTO_ROOT), "generated files missing or left over; run `make proto`"
        stale = [str(rel) for rel in fresh if (out / rel).read_bytes() != (PROTO_ROOT / rel).read_bytes()]
        assert stale == [], f"stale generated files (run `make proto`): {stale}"


def _numbers(message: Descriptor) -> dict[str, int]:
    return {field.name: field.number for field in message.fields}


def test_range_request_uses_etcd_field_numbers() -> None:
    assert _numbers(rpc_pb2.RangeRequest.DESCRIPTOR) == {
        "key": 1, "range_end": 2, "limit": 3, "revision": 4, "sort_order": 5, "sort_target": 6,
        "serializable": 7, "keys_only": 8, "count_only": 9, "min_mod_revision": 10, "max_mod_revision": 11,
        "min_create_revision": 12, "max_create_revision": 13,
    }
    assert _numbers(rpc_pb2.RangeResponse.DESCRIPTOR) == {"header": 1, "kvs": 2, "more": 3, "count": 4}


def test_common_messages_use_etcd_field_numbers() -> None:
    assert _numbers(rpc_pb2.ResponseHeader.DESCRIPTOR) == {
        "cluster_id": 1, "member_id": 2, "revision": 3, "raft_term": 4,
    }
    assert _numbers(rpc_pb2.PutRequest.DESCRIPTOR) == {
        "key": 1, "value": 2, "lease": 3, "prev_kv": 4, "ignore_value": 5, "ignore_lease": 6,
    }
    assert _numbers(rpc_pb2.Compare.DESCRIPTOR) == {
        "result": 1, "target": 2, "key": 3, "version": 4, "create_revision": 5, "mod_revision": 6,
        "value": 7, "lease": 8, "range_end": 64,
    }
    assert _numbers(rpc_pb2.WatchCreateRequest.DESCRIPTOR) == {
        "key": 1, "range_end": 2, "start_revision": 3, "progress_notify": 4, "filters": 5, "prev_kv": 6,
        "watch_id": 7, "fragment": 8,
    }
    assert _numbers(rpc_pb2.WatchResponse.DESCRIPTOR) == {
        "header": 1, "watch_id": 2, "created": 3, "canceled": 4, "compact_revision": 5,
        "cancel_reason": 6, "fragment": 7, "events": 11,
    }
    assert _numbers(rpc_pb2.Member.DESCRIPTOR) == {
        "ID": 1, "name": 2, "peerURLs": 3, "clientURLs": 4, "isLearner": 5,
    }
    assert _numbers(rpc_pb2.StatusResponse.DESCRIPTOR) == {
        "header": 1, "version": 2, "dbSize": 3, "leader": 4, "raftIndex": 5, "raftTerm": 6,
        "raftAppliedIndex": 7, "errors": 8, "dbSizeInUse": 9, "isLearner": 10,
    }
    assert _numbers(kv_pb2.KeyValue.DESCRIPTOR) == {
        "key": 1, "create_revision": 2, "mod_revision": 3, "version": 4, "value": 5, "lease": 6,
    }
    assert _numbers(auth_pb2.Permission.DESCRIPTOR) == {"permType": 1, "key": 2, "range_end": 3}
    assert _numbers(v3election_pb2.LeaderKey.DESCRIPTOR) == {"name": 1, "key": 2, "rev": 3, "lease": 4}
    assert _numbers(v3lock_pb2.LockRequest.DESCRIPTOR) == {"name": 1, "lease": 2}


def test_enums_use_etcd_values() -> None:
    assert rpc_pb2.RangeRequest.SortOrder.Value("DESCEND") == 2
    assert rpc_pb2.RangeRequest.SortTarget.Value("VALUE") == 4
    assert rpc_pb2.Compare.CompareResult.Value("NOT_EQUAL") == 3
    assert rpc_pb2.Compare.CompareTarget.Value("LEASE") == 4
    assert rpc_pb2.WatchCreateRequest.FilterType.Value("NODELETE") == 1
    assert rpc_pb2.AlarmType.Value("CORRUPT") == 2
    assert rpc_pb2.AlarmRequest.AlarmAction.Value("DEACTIVATE") == 2
    assert auth_pb2.Permission.Type.Value("READWRITE") == 2


def test_raft_envelope_keeps_etcd_numbers_and_adds_member_attributes_far_away() -> None:
    numbers = _numbers(raft_internal_pb2.InternalRaftRequest.DESCRIPTOR)
    assert numbers["header"] == 100
    assert numbers["ID"] == 1
    assert numbers["put"] == 4
    assert numbers["txn"] == 6
    assert numbers["lease_checkpoint"] == 11
    assert numbers["auth_enable"] == 1000
    assert numbers["auth_role_revoke_permission"] == 1204
    assert numbers["member_attributes_set"] >= 2000
    assert _numbers(raft_internal_pb2.RequestHeader.DESCRIPTOR) == {
        "ID": 1, "username": 2, "auth_revision": 3,
    }


def _method_paths(file_descriptor: object) -> set[str]:
    services = file_descriptor.services_by_name.values()  # type: ignore[attr-defined]
    return {f"/{service.full_name}/{method.name}" for service in services for method in service.methods}


def test_services_expose_every_etcd_34_method_path() -> None:
    assert _method_paths(rpc_pb2.DESCRIPTOR) == {
        "/etcdserverpb.KV/Range", "/etcdserverpb.KV/Put", "/etcdserverpb.KV/DeleteRange",
        "/etcdserverpb.KV/Txn", "/etcdserverpb.KV/Compact",
        "/etcdserverpb.Watch/Watch",
        "/etcdserverpb.Lease/LeaseGrant", "/etcdserverpb.Lease/LeaseRevoke",
        "/etcdserverpb.Lease/LeaseKeepAlive", "/etcdserverpb.Lease/LeaseTimeToLive",
        "/etcdserverpb.Lease/LeaseLeases",
        "/etcdserverpb.Cluster/MemberAdd", "/etcdserverpb.Cluster/MemberRemove",
        "/etcdserverpb.Cluster/MemberUpdate", "/etcdserverpb.Cluster/MemberList",
        "/etcdserverpb.Cluster/MemberPromote",
        "/etcdserverpb.Maintenance/Alarm", "/etcdserverpb.Maintenance/Status",
        "/etcdserverpb.Maintenance/Defragment", "/etcdserverpb.Maintenance/Hash",
        "/etcdserverpb.Maintenance/HashKV", "/etcdserverpb.Maintenance/Snapshot",
        "/etcdserverpb.Maintenance/MoveLeader",
        "/etcdserverpb.Auth/AuthEnable", "/etcdserverpb.Auth/AuthDisable", "/etcdserverpb.Auth/Authenticate",
        "/etcdserverpb.Auth/UserAdd", "/etcdserverpb.Auth/UserGet", "/etcdserverpb.Auth/UserList",
        "/etcdserverpb.Auth/UserDelete", "/etcdserverpb.Auth/UserChangePassword",
        "/etcdserverpb.Auth/UserGrantRole", "/etcdserverpb.Auth/UserRevokeRole",
        "/etcdserverpb.Auth/RoleAdd", "/etcdserverpb.Auth/RoleGet", "/etcdserverpb.Auth/RoleList",
        "/etcdserverpb.Auth/RoleDelete", "/etcdserverpb.Auth/RoleGrantPermission",
        "/etcdserverpb.Auth/RoleRevokePermission",
    }
    assert _method_paths(v3lock_pb2.DESCRIPTOR) == {"/v3lockpb.Lock/Lock", "/v3lockpb.Lock/Unlock"}
    assert _method_paths(v3election_pb2.DESCRIPTOR) == {
        "/v3electionpb.Election/Campaign", "/v3electionpb.Election/Proclaim", "/v3electionpb.Election/Leader",
        "/v3electionpb.Election/Observe", "/v3electionpb.Election/Resign",
    }


def test_streaming_shapes_match_etcd() -> None:
    methods = {
        f"{service.name}/{method.name}": method
        for service in rpc_pb2.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    for bidirectional in ("Watch/Watch", "Lease/LeaseKeepAlive"):
        assert methods[bidirectional].client_streaming
        assert methods[bidirectional].server_streaming
    assert not methods["Maintenance/Snapshot"].client_streaming
    assert methods["Maintenance/Snapshot"].server_streaming
    assert not methods["KV/Range"].client_streaming and not methods["KV/Range"].server_streaming


# --- against a real etcd 3.4 -------------------------------------------------------------------------------


def _stub(stub_class: Any, channel: grpc.Channel) -> Any:
    """A client stub; typed loosely because the generated stub classes carry no annotations."""
    return stub_class(channel)


@pytest.fixture
def real_etcd(tmp_path: Path) -> Iterator[grpc.Channel]:
    """A one-member etcd on free ports and a channel to it; the process is always stopped."""
    with ServerProcess("etcd", "proto-check", tmp_path / "data", free_port(), free_port()).start() as etcd:
        channel = grpc.insecure_channel(etcd.endpoint)
        try:
            yield channel
        finally:
            channel.close()


def test_real_etcd_answers_kv_calls_through_our_stubs(real_etcd: grpc.Channel) -> None:
    kv = _stub(rpc_pb2_grpc.KVStub, real_etcd)
    put = kv.Put(rpc_pb2.PutRequest(key=b"greeting", value=b"hello"))
    assert put.header.revision >= 2
    assert put.header.cluster_id != 0

    got = kv.Range(rpc_pb2.RangeRequest(key=b"greeting"))
    assert got.count == 1
    assert got.kvs[0].key == b"greeting"
    assert got.kvs[0].value == b"hello"
    assert got.kvs[0].mod_revision == put.header.revision
    assert got.kvs[0].version == 1

    txn = kv.Txn(rpc_pb2.TxnRequest(
        compare=[rpc_pb2.Compare(key=b"greeting", target=rpc_pb2.Compare.VALUE,
                                 result=rpc_pb2.Compare.EQUAL, value=b"hello")],
        success=[rpc_pb2.RequestOp(
            request_put=rpc_pb2.PutRequest(key=b"greeting", value=b"bye", prev_kv=True))],
        failure=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"greeting"))],
    ))
    assert txn.succeeded
    assert txn.responses[0].response_put.prev_kv.value == b"hello"
    assert txn.header.revision == put.header.revision + 1


def test_real_etcd_streams_watch_events_through_our_stubs(real_etcd: grpc.Channel) -> None:
    kv = _stub(rpc_pb2_grpc.KVStub, real_etcd)
    first = kv.Put(rpc_pb2.PutRequest(key=b"watched", value=b"v1"))
    kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"watched"))
    watch = _stub(rpc_pb2_grpc.WatchStub, real_etcd)
    requests = iter([rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(
        key=b"watched", start_revision=first.header.revision, prev_kv=True))])
    stream = watch.Watch(requests, timeout=10)
    try:
        created = next(stream)
        assert created.created
        events: list[kv_pb2.Event] = []
        while len(events) < 2:
            events.extend(next(stream).events)
        assert events[0].type == kv_pb2.Event.PUT
        assert events[0].kv.value == b"v1"
        assert events[1].type == kv_pb2.Event.DELETE
        assert events[1].prev_kv.value == b"v1"
    finally:
        stream.cancel()


def test_real_etcd_answers_lease_cluster_and_status_through_our_stubs(real_etcd: grpc.Channel) -> None:
    lease = _stub(rpc_pb2_grpc.LeaseStub, real_etcd).LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=30))
    assert lease.ID != 0
    assert lease.TTL == 30
    kv = _stub(rpc_pb2_grpc.KVStub, real_etcd)
    kv.Put(rpc_pb2.PutRequest(key=b"leased", value=b"x", lease=lease.ID))
    assert kv.Range(rpc_pb2.RangeRequest(key=b"leased")).kvs[0].lease == lease.ID

    members = _stub(rpc_pb2_grpc.ClusterStub, real_etcd).MemberList(rpc_pb2.MemberListRequest())
    assert len(members.members) == 1
    assert members.members[0].name == "proto-check"
    assert members.members[0].peerURLs[0].startswith("http://127.0.0.1:")
    assert not members.members[0].isLearner

    status = _stub(rpc_pb2_grpc.MaintenanceStub, real_etcd).Status(rpc_pb2.StatusRequest())
    assert status.version.startswith("3.4")
    assert status.leader == members.members[0].ID
    assert status.raftIndex >= status.raftTerm >= 1
    assert status.dbSize > 0
