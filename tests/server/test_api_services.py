"""KV, Lease, Cluster, Maintenance and Auth servicers: etcd's request checks and answers, in-process."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest

from etcdpb.etcdserverpb import rpc_pb2
from pyetcd import errors
from pyetcd.api.kv import check_intervals, check_txn_request
from pyetcd.limits import SNAPSHOT_CHUNK_BYTES
from pyetcd.server_maintenance import ServerMaintenance
from pyetcd.urls import valid_peer_urls
from tests.server.fake_etcd import CLUSTER_ID, MEMBER_ID, RAFT_TERM, Api, serve_api


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with serve_api(tmp_path / "db") as served:
        yield served


def put(key: bytes) -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=b"v"))


def delete(key: bytes, range_end: bytes = b"") -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=key, range_end=range_end))


def nested(success: list[rpc_pb2.RequestOp],
           failure: list[rpc_pb2.RequestOp] | None = None) -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(request_txn=rpc_pb2.TxnRequest(success=success, failure=failure or []))


def refused(ops: list[rpc_pb2.RequestOp]) -> errors.EtcdError | None:
    try:
        check_intervals(ops)
    except errors.EtcdError as err:
        return err
    return None


async def fails(call: object, expected: errors.EtcdError) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    assert (caught.value.code(), caught.value.details()) == (expected.code, expected.message)


# --- txn checks (pure) ---

def test_a_key_may_not_be_written_twice_in_one_branch() -> None:
    assert refused([put(b"a"), put(b"a")]) == errors.ErrGRPCDuplicateKey
    assert refused([put(b"b"), delete(b"a", b"c")]) == errors.ErrGRPCDuplicateKey
    assert refused([put(b"a"), delete(b"a")]) == errors.ErrGRPCDuplicateKey
    assert refused([put(b"a"), delete(b"b", b"c")]) is None
    assert refused([delete(b"a"), delete(b"a")]) is None  # deleting twice is harmless


def test_nested_txn_branches_exclude_each_other_but_not_their_parent() -> None:
    assert refused([nested([put(b"a")], [put(b"a")])]) is None
    assert refused([put(b"a"), nested([put(b"a")])]) == errors.ErrGRPCDuplicateKey
    assert refused([delete(b"a", b"z"), nested([], [put(b"k")])]) == errors.ErrGRPCDuplicateKey
    assert refused([nested([delete(b"k")]), put(b"k")]) == errors.ErrGRPCDuplicateKey
    assert refused([nested([put(b"a")]), nested([put(b"a")])]) == errors.ErrGRPCDuplicateKey


def test_delete_to_the_end_of_the_keyspace_is_not_seen_as_overlapping() -> None:
    # etcd's interval check treats range_end "\0" literally, so this pair passes it.
    assert refused([put(b"b"), delete(b"a", b"\x00")]) is None


def test_txn_op_count_is_the_longest_list_and_nested_txns_share_the_budget() -> None:
    check_txn_request(rpc_pb2.TxnRequest(success=[put(b"%d" % i) for i in range(128)]), 128)
    with pytest.raises(errors.EtcdError) as too_many:
        check_txn_request(rpc_pb2.TxnRequest(failure=[put(b"%d" % i) for i in range(129)]), 128)
    assert too_many.value == errors.ErrGRPCTooManyOps
    inner = nested([put(b"x"), put(b"y")])
    with pytest.raises(errors.EtcdError) as nested_too_many:
        check_txn_request(rpc_pb2.TxnRequest(success=[inner]), 2)  # the nested txn has 2 - 1 left
    assert nested_too_many.value == errors.ErrGRPCTooManyOps


def test_txn_parts_without_keys_are_refused() -> None:
    with pytest.raises(errors.EtcdError) as compare:
        check_txn_request(rpc_pb2.TxnRequest(compare=[rpc_pb2.Compare()]), 128)
    assert compare.value == errors.ErrGRPCEmptyKey
    with pytest.raises(errors.EtcdError) as empty_op:
        check_txn_request(rpc_pb2.TxnRequest(success=[rpc_pb2.RequestOp()]), 128)
    assert empty_op.value == errors.ErrGRPCKeyNotFound


def test_peer_urls_must_be_http_host_port_without_a_path() -> None:
    assert valid_peer_urls(["http://10.0.0.1:2380", "https://[::1]:2380", "unix://sock:0"])
    assert not valid_peer_urls([])
    assert not valid_peer_urls(["unix://sock"])  # etcd 3.4.23 refuses a unix URL without a port too
    assert not valid_peer_urls(["http://10.0.0.1"])
    assert not valid_peer_urls(["http://10.0.0.1:2380/path"])
    assert not valid_peer_urls(["ftp://10.0.0.1:2380"])
    assert not valid_peer_urls(["10.0.0.1:2380"])


# --- KV over gRPC ---

async def test_kv_requests_without_a_key_are_refused(api: Api) -> None:
    await fails(api.kv.Range(rpc_pb2.RangeRequest()), errors.ErrGRPCEmptyKey)
    await fails(api.kv.Put(rpc_pb2.PutRequest(value=b"v")), errors.ErrGRPCEmptyKey)
    await fails(api.kv.DeleteRange(rpc_pb2.DeleteRangeRequest()), errors.ErrGRPCEmptyKey)


async def test_put_that_keeps_the_value_or_lease_may_not_carry_one(api: Api) -> None:
    await fails(api.kv.Put(rpc_pb2.PutRequest(key=b"k", value=b"v", ignore_value=True)),
                errors.ErrGRPCValueProvided)
    await fails(api.kv.Put(rpc_pb2.PutRequest(key=b"k", lease=5, ignore_lease=True)),
                errors.ErrGRPCLeaseProvided)
    await fails(api.kv.Put(rpc_pb2.PutRequest(key=b"missing", ignore_value=True)), errors.ErrGRPCKeyNotFound)


async def test_kv_answers_carry_the_full_header(api: Api) -> None:
    revision = await api.put(b"k")
    answer = await api.kv.Range(rpc_pb2.RangeRequest(key=b"k", count_only=True))
    assert (answer.header.cluster_id, answer.header.member_id, answer.header.raft_term) == (
        CLUSTER_ID, MEMBER_ID, RAFT_TERM)
    assert answer.header.revision == revision
    assert (answer.count, list(answer.kvs)) == (1, [])


async def test_storage_errors_reach_clients_as_etcd_errors(api: Api) -> None:
    await api.put(b"k")
    current = await api.put(b"k")
    await api.kv.Compact(rpc_pb2.CompactionRequest(revision=current))
    await fails(api.kv.Range(rpc_pb2.RangeRequest(key=b"k", revision=current - 1)), errors.ErrGRPCCompacted)
    await fails(api.kv.Range(rpc_pb2.RangeRequest(key=b"k", revision=current + 5)), errors.ErrGRPCFutureRev)
    await fails(api.kv.Put(rpc_pb2.PutRequest(key=b"k", lease=999)), errors.ErrGRPCLeaseNotFound)


async def test_txn_refusals_reach_the_client(api: Api) -> None:
    await fails(api.kv.Txn(rpc_pb2.TxnRequest(success=[put(b"a"), put(b"a")])), errors.ErrGRPCDuplicateKey)
    await fails(api.kv.Txn(rpc_pb2.TxnRequest(success=[put(b"%d" % i) for i in range(129)])),
                errors.ErrGRPCTooManyOps)


# --- Lease ---

async def test_keep_alive_answers_each_renewal_and_zero_for_a_gone_lease(api: Api) -> None:
    granted = await api.lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=30))
    call = api.lease.LeaseKeepAlive()
    await call.write(rpc_pb2.LeaseKeepAliveRequest(ID=granted.ID))
    alive = await call.read()
    assert (alive.ID, alive.TTL, alive.header.member_id) == (granted.ID, 30, MEMBER_ID)
    await call.write(rpc_pb2.LeaseKeepAliveRequest(ID=12345))
    gone = await call.read()
    assert (gone.ID, gone.TTL) == (12345, 0)
    await call.done_writing()
    assert await call.read() == grpc.aio.EOF


async def test_time_to_live_of_an_unknown_lease_is_minus_one_not_an_error(api: Api) -> None:
    answer = await api.lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=77))
    assert (answer.ID, answer.TTL, answer.grantedTTL) == (77, -1, 0)
    assert answer.header.cluster_id == CLUSTER_ID


async def test_lease_grant_beyond_the_maximum_ttl_is_refused(api: Api) -> None:
    await fails(api.lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=9_000_000_001)),
                errors.ErrGRPCLeaseTTLTooLarge)
    await fails(api.lease.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=5)), errors.ErrGRPCLeaseNotFound)


# --- Cluster ---

async def test_member_add_refuses_bad_peer_urls(api: Api) -> None:
    await fails(api.cluster.MemberAdd(rpc_pb2.MemberAddRequest(peerURLs=["not a url"])),
                errors.ErrGRPCMemberBadURLs)
    added = await api.cluster.MemberAdd(rpc_pb2.MemberAddRequest(peerURLs=["http://127.0.0.1:12380"]))
    assert added.member.peerURLs == ["http://127.0.0.1:12380"]


async def test_cluster_answers_carry_no_revision(api: Api) -> None:
    await api.put(b"k")
    listed = await api.cluster.MemberList(rpc_pb2.MemberListRequest())
    header = listed.header
    assert (header.cluster_id, header.raft_term, header.revision) == (CLUSTER_ID, RAFT_TERM, 0)
    await fails(api.cluster.MemberRemove(rpc_pb2.MemberRemoveRequest(ID=1)), errors.ErrGRPCMemberNotFound)


# --- Maintenance ---

async def test_snapshot_streams_32k_blobs_then_their_sha256(api: Api) -> None:
    for i in range(200):
        await api.put(b"/snap/%d" % i, b"x" * 500)
    expected = api.etcd.store.snapshot_bytes()
    responses = [response async for response in api.maintenance.Snapshot(rpc_pb2.SnapshotRequest())]
    *blobs, digest = responses
    data = b"".join(r.blob for r in blobs)
    assert len(data) == len(expected)
    assert digest.blob == hashlib.sha256(data).digest()
    assert all(len(r.blob) == SNAPSHOT_CHUNK_BYTES for r in blobs[:-1])
    assert [r.remaining_bytes for r in blobs] == [len(data) - sum(len(b.blob) for b in blobs[:i + 1])
                                                  for i in range(len(blobs))]
    assert digest.remaining_bytes == 0


async def test_status_and_hash_kv_headers_are_filled(api: Api) -> None:
    revision = await api.put(b"k")
    status = await api.maintenance.Status(rpc_pb2.StatusRequest())
    assert (status.header.member_id, status.header.revision) == (MEMBER_ID, revision)
    assert status.version == "3.4.23"
    hashed = await api.maintenance.HashKV(rpc_pb2.HashKVRequest(revision=0))
    assert hashed.header.revision == revision
    assert hashed.header.cluster_id == CLUSTER_ID
    await fails(api.maintenance.MoveLeader(rpc_pb2.MoveLeaderRequest(targetID=3)),
                errors.ErrGRPCBadLeaderTransferee)


# --- Auth ---

async def test_auth_starts_disabled_and_adds_users_and_roles_as_etcd_does(api: Api) -> None:
    await fails(api.auth.AuthEnable(rpc_pb2.AuthEnableRequest()), errors.ErrGRPCRootUserNotExist)
    await fails(api.auth.Authenticate(rpc_pb2.AuthenticateRequest(name="root", password="x")),
                errors.ErrGRPCAuthNotEnabled)
    await fails(api.auth.UserGet(rpc_pb2.AuthUserGetRequest(name="u")), errors.ErrGRPCUserNotFound)
    users = await api.auth.UserList(rpc_pb2.AuthUserListRequest())
    assert (list(users.users), users.header.member_id) == ([], MEMBER_ID)
    assert list((await api.auth.RoleList(rpc_pb2.AuthRoleListRequest())).roles) == []
    await api.auth.AuthDisable(rpc_pb2.AuthDisableRequest())
    # etcd adds users and roles while auth is off.
    await api.auth.UserAdd(rpc_pb2.AuthUserAddRequest(name="u", password="p"))
    await fails(api.auth.UserAdd(rpc_pb2.AuthUserAddRequest(name="u", password="p")), errors.ErrGRPCUserAlreadyExist)
    await api.auth.RoleAdd(rpc_pb2.AuthRoleAddRequest(name="r"))
    await api.auth.UserGrantRole(rpc_pb2.AuthUserGrantRoleRequest(user="u", role="r"))
    got = await api.auth.UserGet(rpc_pb2.AuthUserGetRequest(name="u"))
    assert list(got.roles) == ["r"] and got.header.cluster_id == CLUSTER_ID


async def test_status_takes_leader_and_term_from_one_reading_of_raft() -> None:
    # A deposed leader's driver still names itself until it handles the next Ready, while Raft
    # itself is already in the new term with no leader: Status must not mix the two.
    raft_now = SimpleNamespace(leader_id=0, term=35, commit=7)
    member = SimpleNamespace(
        member_id=1, node=SimpleNamespace(status=lambda: raft_now, leader_id=1, term=34),
        membership=SimpleNamespace(get=lambda member_id: None),
        store=SimpleNamespace(db_size=lambda: 4096, db_size_in_use=lambda: 4096, consistent_index=7),
        _alarm_error_strings=lambda: [], header=lambda: rpc_pb2.ResponseHeader(raft_term=35))
    response = await ServerMaintenance.status(member)  # type: ignore[arg-type]
    assert (response.leader, response.raftTerm) == (0, 35)
