"""A learner serves only endpoint status and serializable reads (etcd 3.4's isRPCSupportedForLearner).

Every other unary call, and every stream, is refused with "etcdserver: rpc not supported for
learner" before it reaches the server. In-process: the servicers over a fake member whose
membership record says it is a learner.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from etcdpb.etcdserverpb import rpc_pb2
from pyetcd import errors
from tests.server.fake_etcd import Api, fake_membership, serve_api

NOT_FOR_LEARNER = (errors.ErrGRPCNotSupportedForLearner.code, errors.ErrGRPCNotSupportedForLearner.message)


@pytest.fixture
async def learner(tmp_path: Path) -> AsyncIterator[Api]:
    async with serve_api(tmp_path / "db") as served:
        await served.put(b"k", b"v")  # written while still a voter, read below as a learner
        served.etcd.membership = fake_membership(is_learner=True)
        yield served


def refused_unary_calls(api: Api) -> dict[str, Callable[[], Awaitable[Any]]]:
    return {
        "linearizable Range": lambda: api.kv.Range(rpc_pb2.RangeRequest(key=b"k")),
        "Put": lambda: api.kv.Put(rpc_pb2.PutRequest(key=b"k", value=b"v")),
        "DeleteRange": lambda: api.kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"k")),
        "serializable read-only Txn": lambda: api.kv.Txn(rpc_pb2.TxnRequest(success=[rpc_pb2.RequestOp(
            request_range=rpc_pb2.RangeRequest(key=b"k", serializable=True))])),
        "Compact": lambda: api.kv.Compact(rpc_pb2.CompactionRequest(revision=1)),
        "LeaseGrant": lambda: api.lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=60)),
        "LeaseRevoke": lambda: api.lease.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=1)),
        "LeaseTimeToLive": lambda: api.lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=1)),
        "LeaseLeases": lambda: api.lease.LeaseLeases(rpc_pb2.LeaseLeasesRequest()),
        "MemberList": lambda: api.cluster.MemberList(rpc_pb2.MemberListRequest()),
        "MemberAdd": lambda: api.cluster.MemberAdd(rpc_pb2.MemberAddRequest(peerURLs=["http://127.0.0.1:1"])),
        "Alarm": lambda: api.maintenance.Alarm(rpc_pb2.AlarmRequest()),
        "Defragment": lambda: api.maintenance.Defragment(rpc_pb2.DefragmentRequest()),
        "Hash": lambda: api.maintenance.Hash(rpc_pb2.HashRequest()),
        "HashKV": lambda: api.maintenance.HashKV(rpc_pb2.HashKVRequest()),
        "MoveLeader": lambda: api.maintenance.MoveLeader(rpc_pb2.MoveLeaderRequest(targetID=1)),
        "UserList": lambda: api.auth.UserList(rpc_pb2.AuthUserListRequest()),
    }


async def refusal(call: Awaitable[Any]) -> tuple[Any, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value.code(), caught.value.details() or ""


async def test_a_learner_answers_status_and_serializable_reads(learner: Api) -> None:
    status = await learner.maintenance.Status(rpc_pb2.StatusRequest())
    assert status.version == "3.4.23"
    got = await learner.kv.Range(rpc_pb2.RangeRequest(key=b"k", serializable=True))
    assert [(kv.key, kv.value) for kv in got.kvs] == [(b"k", b"v")]


async def test_a_learner_refuses_every_other_unary_call(learner: Api) -> None:
    before = learner.etcd.store.current_revision
    answers = {name: await refusal(call()) for name, call in refused_unary_calls(learner).items()}
    assert answers == {name: NOT_FOR_LEARNER for name in answers}
    # Nothing reached the store.
    got = await learner.kv.Range(rpc_pb2.RangeRequest(key=b"k", serializable=True))
    assert got.header.revision == before


async def test_a_learner_refuses_every_stream(learner: Api) -> None:
    watch = learner.watch.Watch(iter([rpc_pb2.WatchRequest(
        create_request=rpc_pb2.WatchCreateRequest(key=b"k"))]))
    assert await refusal(watch.read()) == NOT_FOR_LEARNER
    keep_alive = learner.lease.LeaseKeepAlive(iter([rpc_pb2.LeaseKeepAliveRequest(ID=1)]))
    assert await refusal(keep_alive.read()) == NOT_FOR_LEARNER
    snapshot = learner.maintenance.Snapshot(rpc_pb2.SnapshotRequest())
    assert await refusal(snapshot.read()) == NOT_FOR_LEARNER


async def test_a_promoted_learner_serves_everything(learner: Api) -> None:
    learner.etcd.membership = fake_membership(is_learner=False)
    for call in refused_unary_calls(learner).values():
        try:
            await call()
        except grpc.aio.AioRpcError as err:
            # The fake refuses some calls on its own; none for being a learner.
            assert (err.code(), err.details()) != NOT_FOR_LEARNER
    await learner.put(b"k", b"after promotion")
