"""Hostile and odd input over real gRPC: etcd's answers, and the server keeps serving.

Each test runs against real etcd and against pyetcd (see conftest.py). Where the two cannot
agree word for word (the protobuf decoders word their failures differently), the status
code and etcd's fixed prefix must still match.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import grpc
import pytest

from etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from etcdpb.mvccpb import kv_pb2
from pyetcd.api.kv import MAX_TXN_NESTING
from tests.helpers.servers import ServerProcess

LEASE_NOT_FOUND = (grpc.StatusCode.NOT_FOUND, "etcdserver: requested lease not found")
TOO_MANY_OPS = (grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: too many operations in txn request")


def _identity(data: bytes) -> bytes:
    return data


async def raw_call(endpoint: str, method: str, data: bytes) -> tuple[grpc.StatusCode, str]:
    """Send `data` as the request bytes of `method`, bypassing any client-side encoding."""
    async with grpc.aio.insecure_channel(endpoint) as channel:
        call = channel.unary_unary(method, request_serializer=_identity, response_deserializer=_identity)
        try:
            await call(data, timeout=10)
        except grpc.aio.AioRpcError as err:
            return err.code(), err.details() or ""
    return grpc.StatusCode.OK, ""


async def failure(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value.code(), caught.value.details() or ""


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if not value:
            return bytes(out + bytes([low]))
        out.append(low | 0x80)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def nested_txn(levels: int, key: bytes) -> bytes:
    """A txn whose success branch holds a txn, `levels` deep, the innermost putting `key`.

    Built by hand: the protobuf library refuses to build messages this deep itself.
    """
    put = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=b"%d" % levels))
    data = rpc_pb2.TxnRequest(success=[put]).SerializeToString()
    for _ in range(levels):
        data = _field(rpc_pb2.TxnRequest.SUCCESS_FIELD_NUMBER, _field(rpc_pb2.RequestOp.REQUEST_TXN_FIELD_NUMBER, data))
    return data


async def still_serving(endpoint: str, key: bytes) -> None:
    async with grpc.aio.insecure_channel(endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        put = await kv.Put(rpc_pb2.PutRequest(key=key, value=b"alive"), timeout=10)
        got = await kv.Range(rpc_pb2.RangeRequest(key=key), timeout=10)
    assert [(kv.key, kv.value, kv.mod_revision) for kv in got.kvs] == [(key, b"alive", put.header.revision)]


@pytest.mark.parametrize("method", ["/etcdserverpb.KV/Put", "/etcdserverpb.KV/Range", "/etcdserverpb.KV/Txn",
                                    "/etcdserverpb.Lease/LeaseGrant", "/etcdserverpb.Maintenance/Status",
                                    "/etcdserverpb.Cluster/MemberList"])
async def test_undecodable_request_bytes_are_an_internal_error(server: ServerProcess, method: str) -> None:
    for garbage in (b"\xff\xff\xff", b"\x0a\x05ab"):  # a bad tag; a length running past the end
        code, details = await raw_call(server.endpoint, method, garbage)
        assert code == grpc.StatusCode.INTERNAL
        assert details.startswith("grpc: error unmarshalling request: ")
    await still_serving(server.endpoint, b"/hostile/after-garbage")


async def test_empty_request_bytes_are_a_request_with_every_field_unset(server: ServerProcess) -> None:
    assert await raw_call(server.endpoint, "/etcdserverpb.KV/Put", b"") == (
        grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: key is not provided")
    assert await raw_call(server.endpoint, "/etcdserverpb.Maintenance/Status", b"") == (grpc.StatusCode.OK, "")


async def test_unknown_methods_and_services_are_unimplemented_in_grpc_gos_words(server: ServerProcess) -> None:
    assert await raw_call(server.endpoint, "/etcdserverpb.KV/Nope", b"") == (
        grpc.StatusCode.UNIMPLEMENTED, "unknown method Nope for service etcdserverpb.KV")
    assert await raw_call(server.endpoint, "/nope.Service/Call", b"") == (
        grpc.StatusCode.UNIMPLEMENTED, "unknown service nope.Service")


@pytest.mark.parametrize("size", [511, 512, 4096, 1_000_000])
async def test_keys_past_the_lmdb_key_limit_are_stored_listed_watched_and_deleted(
        server: ServerProcess, size: int) -> None:
    prefix = b"/bigkey/%d/" % size
    key = prefix + b"k" * (size - len(prefix))
    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        watch = rpc_pb2_grpc.WatchStub(channel)
        put = await kv.Put(rpc_pb2.PutRequest(key=key, value=b"v"), timeout=10)
        revision = put.header.revision
        exact = await kv.Range(rpc_pb2.RangeRequest(key=key), timeout=10)
        assert [(kv.key, kv.value, kv.create_revision) for kv in exact.kvs] == [(key, b"v", revision)]
        listed = await kv.Range(rpc_pb2.RangeRequest(key=prefix, range_end=prefix[:-1] + b"0", keys_only=True),
                                timeout=10)
        assert [kv.key for kv in listed.kvs] == [key]
        # Another key that differs only in its last byte stays apart.
        twin = key[:-1] + b"j"
        await kv.Put(rpc_pb2.PutRequest(key=twin, value=b"twin"), timeout=10)
        both = await kv.Range(rpc_pb2.RangeRequest(key=prefix, range_end=prefix[:-1] + b"0"), timeout=10)
        assert [(kv.key, kv.value) for kv in both.kvs] == [(twin, b"twin"), (key, b"v")]

        create = rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=key, start_revision=revision))
        stream = watch.Watch(iter([create]))
        events: list[tuple[int, bytes, int]] = []
        async for response in stream:
            events.extend((event.type, event.kv.key, event.kv.mod_revision) for event in response.events)
            if events:
                break
        stream.cancel()
        assert events == [(kv_pb2.Event.PUT, key, revision)]

        deleted = await kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=prefix, range_end=prefix[:-1] + b"0"),
                                       timeout=10)
        assert deleted.deleted == 2


async def test_inverted_ranges_match_nothing_and_change_nothing(server: ServerProcess) -> None:
    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        await kv.Put(rpc_pb2.PutRequest(key=b"/inverted/m", value=b"v"), timeout=10)
        got = await kv.Range(rpc_pb2.RangeRequest(key=b"/inverted/z", range_end=b"/inverted/a"), timeout=10)
        assert (list(got.kvs), got.count, got.more) == ([], 0, False)
        before = got.header.revision
        deleted = await kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"/inverted/z", range_end=b"/inverted/a"),
                                       timeout=10)
        assert (deleted.deleted, deleted.header.revision) == (0, before)
        # A negative limit means "no limit"; a negative lower bound lets everything through, while
        # a negative upper bound lets nothing through (etcd compares against any non-zero bound).
        loose = await kv.Range(rpc_pb2.RangeRequest(key=b"/inverted/", range_end=b"/inverted0", limit=-5,
                                                    min_mod_revision=-1), timeout=10)
        assert [kv.key for kv in loose.kvs] == [b"/inverted/m"]
        none = await kv.Range(rpc_pb2.RangeRequest(key=b"/inverted/", range_end=b"/inverted0",
                                                   max_create_revision=-3), timeout=10)
        assert list(none.kvs) == []


async def test_unknown_sort_order_or_target_answers_in_key_order(server: ServerProcess) -> None:
    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        for key, value in [(b"/sort/b", b"1"), (b"/sort/a", b"2"), (b"/sort/c", b"0")]:
            await kv.Put(rpc_pb2.PutRequest(key=key, value=value), timeout=10)
        request = rpc_pb2.RangeRequest(key=b"/sort/", range_end=b"/sort0", sort_target=rpc_pb2.RangeRequest.VALUE)
        request.sort_order = 7  # type: ignore[assignment]  # not a SortOrder etcd knows: it leaves the answer unsorted
        got = await kv.Range(request, timeout=10)
        assert [kv.key for kv in got.kvs] == [b"/sort/a", b"/sort/b", b"/sort/c"]


async def test_bogus_lease_ids_are_reported_not_found(server: ServerProcess) -> None:
    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        lease = rpc_pb2_grpc.LeaseStub(channel)
        for bogus in (-1, 12345, 2**63 - 1):
            assert await failure(kv.Put(rpc_pb2.PutRequest(key=b"/lease/k", value=b"v", lease=bogus),
                                        timeout=10)) == LEASE_NOT_FOUND
            assert await failure(lease.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=bogus), timeout=10)) == LEASE_NOT_FOUND
            ttl = await lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=bogus), timeout=10)
            assert (ttl.ID, ttl.TTL) == (bogus, -1)  # noqa: SIM300 - TTL is a field, not a constant
            keep = lease.LeaseKeepAlive(iter([rpc_pb2.LeaseKeepAliveRequest(ID=bogus)]))
            answers = [(answer.ID, answer.TTL) async for answer in keep]
            assert answers == [(bogus, 0)]
        put_in_txn = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"/lease/t", value=b"v", lease=999))
        assert await failure(kv.Txn(rpc_pb2.TxnRequest(success=[put_in_txn]), timeout=10)) == LEASE_NOT_FOUND
        assert await failure(lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=2**62), timeout=10)) == (
            grpc.StatusCode.OUT_OF_RANGE, "etcdserver: too large lease TTL")
    await still_serving(server.endpoint, b"/lease/after")


@pytest.mark.parametrize("levels", [1, 20, MAX_TXN_NESTING])
async def test_nested_txns_apply_all_the_way_down(server: ServerProcess, levels: int) -> None:
    key = b"/nested/%d" % levels
    assert await raw_call(server.endpoint, "/etcdserverpb.KV/Txn", nested_txn(levels, key)) == (
        grpc.StatusCode.OK, "")
    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        got = await rpc_pb2_grpc.KVStub(channel).Range(rpc_pb2.RangeRequest(key=key), timeout=10)
    assert [kv.value for kv in got.kvs] == [b"%d" % levels]


@pytest.mark.parametrize("levels", [200, 10_000])
async def test_absurdly_nested_txns_are_too_many_operations(server: ServerProcess, levels: int) -> None:
    key = b"/too-deep/%d" % levels
    assert await raw_call(server.endpoint, "/etcdserverpb.KV/Txn", nested_txn(levels, key)) == TOO_MANY_OPS
    await still_serving(server.endpoint, key)


WATCHES = 1000


async def test_a_thousand_watches_on_one_stream_each_see_every_event(server: ServerProcess) -> None:
    requests: asyncio.Queue[rpc_pb2.WatchRequest | None] = asyncio.Queue()

    async def outgoing() -> AsyncIterator[rpc_pb2.WatchRequest]:
        while (request := await requests.get()) is not None:
            yield request

    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        stream = rpc_pb2_grpc.WatchStub(channel).Watch(outgoing())
        for number in range(WATCHES):
            # Half watch the whole prefix, half one key each; all on one stream.
            key, end = (b"/many/", b"/many0") if number % 2 else (b"/many/%04d" % number, b"")
            requests.put_nowait(rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(
                key=key, range_end=end)))
        created: list[int] = []  # the n-th answer is for the n-th create, as the stream keeps order
        while len(created) < WATCHES:
            response = await stream.read()
            assert response.created and not response.canceled, response
            created.append(response.watch_id)
        assert len(set(created)) == WATCHES

        written = [0, 2, 999]
        for number in written:
            await kv.Put(rpc_pb2.PutRequest(key=b"/many/%04d" % number, value=b"v"), timeout=10)
        expected = Counter({watch_id: len(written) for number, watch_id in enumerate(created) if number % 2})
        expected.update({created[number]: 1 for number in written if number % 2 == 0})
        seen: Counter[int] = Counter()
        while sum(seen.values()) < sum(expected.values()):
            response = await stream.read()
            seen.update({response.watch_id: len(response.events)})
        assert seen == expected

        for watch_id in created:
            requests.put_nowait(rpc_pb2.WatchRequest(cancel_request=rpc_pb2.WatchCancelRequest(watch_id=watch_id)))
        canceled: set[int] = set()
        while len(canceled) < WATCHES:
            response = await stream.read()
            if response.canceled:
                canceled.add(response.watch_id)
        assert canceled == set(created)
        requests.put_nowait(None)
        stream.cancel()
    await still_serving(server.endpoint, b"/many-after")
