"""The experiment answers like pyetcd through its fronts (collected by `make test`, as pyproject's testpaths
include benchmarks/experiments)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from benchmarks.compare.servers import cluster
from benchmarks.experiments.front_processes import wire
from benchmarks.experiments.front_processes.bench import FrontedTarget, fronted_cluster
from etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc


@pytest.fixture(scope="module")
def member(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FrontedTarget]:
    """One member as a core and two fronts."""
    target = fronted_cluster(1, 2, tmp_path_factory.mktemp("fronts"), ())
    target.start()
    try:
        yield target
    finally:
        target.stop()


@pytest.fixture
def kv(member: FrontedTarget) -> Iterator[rpc_pb2_grpc.KVStub]:
    with grpc.insecure_channel(member.endpoints[0]) as channel:
        yield rpc_pb2_grpc.KVStub(channel)


def test_batch_frames_survive_a_round_trip() -> None:
    items = [(1, b"put"), (0, b""), (4, bytes(range(256)) * 10)]
    frame = wire.encode(7, items)
    assert wire.decode_body(frame[4:]) == (7, items)


def test_the_fronts_share_one_client_endpoint(member: FrontedTarget) -> None:
    assert len(member.endpoints) == 1
    assert [m.name.rsplit("-", 1)[1] for m in member.members] == ["core", "front1", "front2"]


def test_a_put_through_a_front_is_read_back_linearizably(kv: rpc_pb2_grpc.KVStub) -> None:
    put = kv.Put(rpc_pb2.PutRequest(key=b"fronted", value=b"v1", prev_kv=True), timeout=10)
    got = kv.Range(rpc_pb2.RangeRequest(key=b"fronted"), timeout=10)
    assert [(item.key, item.value) for item in got.kvs] == [(b"fronted", b"v1")]
    assert got.header.revision == put.header.revision == got.kvs[0].mod_revision
    assert got.header.member_id != 0 and got.header.raft_term > 0


def test_concurrent_puts_in_one_batch_each_get_their_own_revision(member: FrontedTarget) -> None:
    with grpc.insecure_channel(member.endpoints[0]) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        calls = [kv.Put.future(rpc_pb2.PutRequest(key=b"many%03d" % n, value=b"x"), timeout=10) for n in range(64)]
        revisions = [call.result().header.revision for call in calls]
        listed = kv.Range(rpc_pb2.RangeRequest(key=b"many", range_end=b"manz"), timeout=10)
    assert len(set(revisions)) == 64
    assert sorted(item.mod_revision for item in listed.kvs) == sorted(revisions)


def test_txn_delete_and_compact_are_forwarded_too(kv: rpc_pb2_grpc.KVStub) -> None:
    txn = rpc_pb2.TxnRequest(success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"t", value=b"1"))])
    assert kv.Txn(txn, timeout=10).succeeded
    assert kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"t"), timeout=10).deleted == 1
    revision = kv.Range(rpc_pb2.RangeRequest(key=b"t"), timeout=10).header.revision
    kv.Compact(rpc_pb2.CompactionRequest(revision=revision), timeout=10)
    with pytest.raises(grpc.RpcError) as compacted:
        kv.Range(rpc_pb2.RangeRequest(key=b"t", revision=revision - 1), timeout=10)
    assert compacted.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert compacted.value.details() == "etcdserver: mvcc: required revision has been compacted"


def test_etcd_errors_reach_the_client_unchanged(kv: rpc_pb2_grpc.KVStub) -> None:
    with pytest.raises(grpc.RpcError) as empty:
        kv.Put(rpc_pb2.PutRequest(key=b"", value=b"v"), timeout=10)
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert empty.value.details() == "etcdserver: key is not provided"


def test_undecodable_bytes_get_grpc_gos_unmarshal_error(member: FrontedTarget) -> None:
    with grpc.insecure_channel(member.endpoints[0]) as channel:
        put = channel.unary_unary("/etcdserverpb.KV/Put")
        with pytest.raises(grpc.RpcError) as refused:
            put(b"\xff\xff\xff", timeout=10)
    assert refused.value.code() == grpc.StatusCode.INTERNAL
    assert refused.value.details().startswith("grpc: error unmarshalling request: ")


def test_services_other_than_kv_are_unimplemented_at_the_fronts(member: FrontedTarget) -> None:
    with grpc.insecure_channel(member.endpoints[0]) as channel, pytest.raises(grpc.RpcError) as refused:
        rpc_pb2_grpc.MaintenanceStub(channel).Status(rpc_pb2.StatusRequest(), timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_the_core_serves_the_full_api_on_its_admin_address(member: FrontedTarget) -> None:
    admin_url = next(arg for arg in member.members[0].command if arg.startswith("--admin-url="))
    with grpc.insecure_channel(admin_url.split("//", 1)[1]) as channel:
        status = rpc_pb2_grpc.MaintenanceStub(channel).Status(rpc_pb2.StatusRequest(), timeout=10)
    assert status.leader == status.header.member_id != 0


def test_a_front_stops_when_its_core_is_gone(tmp_path: Path) -> None:
    target = fronted_cluster(1, 1, tmp_path, ())
    target.start()
    try:
        core, front = target.members
        core.stop()
        assert front.process is not None
        assert front.process.wait(30) == 0
        assert "the core closed the batch connection" in front.log_tail()
    finally:
        target.stop()


def test_a_plain_member_and_a_fronted_one_answer_alike(tmp_path: Path, member: FrontedTarget) -> None:
    """The same requests against plain pyetcd and against the fronts give the same answers."""
    plain = cluster("pyetcd", 1, tmp_path)
    plain.start()
    try:
        answers = []
        for endpoint in (plain.endpoints[0], member.endpoints[0]):
            with grpc.insecure_channel(endpoint) as channel:
                kv = rpc_pb2_grpc.KVStub(channel)
                kv.Put(rpc_pb2.PutRequest(key=b"same", value=b"1"), timeout=10)
                got = kv.Range(rpc_pb2.RangeRequest(key=b"same", count_only=True), timeout=10)
                answers.append((got.count, got.more, len(got.kvs)))
    finally:
        plain.stop()
    assert answers[0] == answers[1] == (1, False, 0)



def test_the_single_process_control_variant_batches_kv_itself(tmp_path: Path) -> None:
    target = fronted_cluster(1, 0, tmp_path, ())
    target.start()
    try:
        assert [member.name.rsplit("-", 1)[1] for member in target.members] == ["core"]
        with grpc.insecure_channel(target.endpoints[0]) as channel:
            kv = rpc_pb2_grpc.KVStub(channel)
            calls = [kv.Put.future(rpc_pb2.PutRequest(key=b"solo%02d" % n, value=b"x"), timeout=10)
                     for n in range(32)]
            revisions = {call.result().header.revision for call in calls}
            listed = kv.Range(rpc_pb2.RangeRequest(key=b"solo", range_end=b"solp", count_only=True), timeout=10)
            with pytest.raises(grpc.RpcError) as empty:
                kv.Range(rpc_pb2.RangeRequest(key=b""), timeout=10)
        assert len(revisions) == 32 and listed.count == 32
        assert empty.value.details() == "etcdserver: key is not provided"
    finally:
        target.stop()
    assert "local batches" in target.members[0].log_tail()
