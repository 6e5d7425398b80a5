"""The grpc-proxy against real etcd: etcdctl through it, coalescing, namespace, failover."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest

from etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from etcdpb.mvccpb import kv_pb2
from pyetcd.proxy import ProxyConfig, serve_proxy
from pyetcd.proxy.handlers import service_handler
from tests.helpers.servers import free_port
from tests.proxy.real_etcd import EtcdCluster, ProxyFactory, etcdctl, etcdctl_watch, stub


def proxy_endpoint(proxy: Any) -> str:
    return f"127.0.0.1:{proxy.port}"


async def until(condition: Any, what: str) -> None:
    """Wait for a condition the proxy reaches asynchronously (bounded, so a bug fails instead of hanging)."""
    for _ in range(400):
        if condition():
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"never happened: {what}")


async def read_lines(stream: asyncio.StreamReader, count: int) -> list[str]:
    return [(await asyncio.wait_for(stream.readline(), 10)).decode().rstrip("\n") for _ in range(count)]


@pytest.fixture
async def direct(etcd: EtcdCluster) -> AsyncIterator[grpc.aio.Channel]:
    """A channel straight to the real etcd, to check what the proxy did there."""
    channel = grpc.aio.insecure_channel(etcd.endpoints[0])
    try:
        yield channel
    finally:
        await channel.close()


# --- KV ---


async def test_etcdctl_put_and_get_go_through_the_proxy(etcd: EtcdCluster, start_proxy: ProxyFactory,
                                                        direct: grpc.aio.Channel) -> None:
    proxy = await start_proxy(etcd.endpoints)
    assert (await etcdctl(proxy_endpoint(proxy), "put", "kv/greeting", "hello")).strip() == "OK"
    assert await etcdctl(proxy_endpoint(proxy), "get", "kv/greeting") == "kv/greeting\nhello\n"
    stored = await stub(rpc_pb2_grpc.KVStub, direct).Range(rpc_pb2.RangeRequest(key=b"kv/greeting"))
    assert stored.kvs[0].value == b"hello"


async def test_serializable_reads_come_from_the_cache_until_a_write_through_the_proxy(
        etcd: EtcdCluster, start_proxy: ProxyFactory) -> None:
    proxy = await start_proxy(etcd.endpoints)
    endpoint = proxy_endpoint(proxy)
    await etcdctl(endpoint, "put", "cache/k", "v1")
    await etcdctl(endpoint, "get", "cache/k", "--consistency=s")
    hits_before = proxy.cache.hits
    assert await etcdctl(endpoint, "get", "cache/k", "--consistency=s") == "cache/k\nv1\n"
    assert proxy.cache.hits == hits_before + 1

    await etcdctl(endpoint, "put", "cache/k", "v2")
    assert await etcdctl(endpoint, "get", "cache/k", "--consistency=s") == "cache/k\nv2\n"
    # A write inside a Txn invalidates the cached prefix read too.
    assert await etcdctl(endpoint, "get", "cache/", "--prefix", "--consistency=s") == "cache/k\nv2\n"
    async with grpc.aio.insecure_channel(endpoint) as channel:
        txn = await stub(rpc_pb2_grpc.KVStub, channel).Txn(rpc_pb2.TxnRequest(
            success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"cache/k", value=b"v3"))]))
        assert txn.succeeded
    assert await etcdctl(endpoint, "get", "cache/", "--prefix", "--consistency=s") == "cache/k\nv3\n"


async def test_upstream_errors_reach_the_client_unchanged(etcd: EtcdCluster, start_proxy: ProxyFactory,
                                                          direct: grpc.aio.Channel) -> None:
    proxy = await start_proxy(etcd.endpoints)
    future = rpc_pb2.RangeRequest(key=b"err/k", revision=1_000_000)
    unknown_lease = rpc_pb2.LeaseRevokeRequest(ID=0x1234)
    async with grpc.aio.insecure_channel(proxy_endpoint(proxy)) as through_proxy:
        errors = []
        for channel in (direct, through_proxy):
            with pytest.raises(grpc.aio.AioRpcError) as range_error:
                await stub(rpc_pb2_grpc.KVStub, channel).Range(future)
            with pytest.raises(grpc.aio.AioRpcError) as lease_error:
                await stub(rpc_pb2_grpc.LeaseStub, channel).LeaseRevoke(unknown_lease)
            errors.append([(e.value.code(), e.value.details()) for e in (range_error, lease_error)])
    assert errors[0] == errors[1]
    assert errors[1][0] == (grpc.StatusCode.OUT_OF_RANGE,
                            "etcdserver: mvcc: required revision is a future revision")
    assert errors[1][1] == (grpc.StatusCode.NOT_FOUND, "etcdserver: requested lease not found")


# --- Watch ---


async def test_two_etcdctl_watchers_on_one_key_share_one_upstream_watch(
        etcd: EtcdCluster, start_proxy: ProxyFactory) -> None:
    proxy = await start_proxy(etcd.endpoints)
    endpoint = proxy_endpoint(proxy)
    watchers = [await etcdctl_watch(endpoint, "watch/shared") for _ in range(2)]
    try:
        assert proxy.watch_hub is not None
        await until(lambda: proxy.watch_hub.coalesced == 1, "second watcher joined the first one's watch")
        assert proxy.upstream_watch_count == 1

        await etcdctl(endpoint, "put", "watch/shared", "hello")
        for watcher in watchers:
            assert watcher.stdout is not None
            assert await read_lines(watcher.stdout, 3) == ["PUT", "watch/shared", "hello"]
        assert proxy.watch_hub.upstream_watches_opened == 1
    finally:
        for watcher in watchers:
            watcher.kill()
            await watcher.wait()
    await until(lambda: proxy.upstream_watch_count == 0, "upstream watch closed after its watchers left")


async def test_watcher_asking_for_history_gets_its_own_upstream_watch(
        etcd: EtcdCluster, start_proxy: ProxyFactory) -> None:
    proxy = await start_proxy(etcd.endpoints)
    async with grpc.aio.insecure_channel(proxy_endpoint(proxy)) as channel:
        kv = stub(rpc_pb2_grpc.KVStub, channel)
        first = await kv.Put(rpc_pb2.PutRequest(key=b"watch/history", value=b"old"))
        watch = stub(rpc_pb2_grpc.WatchStub, channel)
        now_stream = watch.Watch()
        await now_stream.write(rpc_pb2.WatchRequest(
            create_request=rpc_pb2.WatchCreateRequest(key=b"watch/history")))
        assert (await now_stream.read()).created
        history_stream = watch.Watch()
        await history_stream.write(rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(
            key=b"watch/history", start_revision=first.header.revision, prev_kv=True)))
        assert (await history_stream.read()).created
        # Joining the "now" watch would have missed the old event, so the proxy opened another.
        assert proxy.upstream_watch_count == 2

        old = await history_stream.read()
        assert [(e.kv.value, e.kv.mod_revision) for e in old.events] == [(b"old", first.header.revision)]
        second = await kv.Put(rpc_pb2.PutRequest(key=b"watch/history", value=b"new"))
        for stream, wants_prev_kv in ((now_stream, False), (history_stream, True)):
            response = await stream.read()
            assert [e.kv.value for e in response.events] == [b"new"]
            assert response.events[0].kv.mod_revision == second.header.revision
            assert response.events[0].HasField("prev_kv") == wants_prev_kv
        now_stream.cancel()
        history_stream.cancel()


async def test_late_watcher_from_now_joins_and_sees_only_later_events(
        etcd: EtcdCluster, start_proxy: ProxyFactory) -> None:
    proxy = await start_proxy(etcd.endpoints)
    async with grpc.aio.insecure_channel(proxy_endpoint(proxy)) as channel:
        kv = stub(rpc_pb2_grpc.KVStub, channel)
        watch = stub(rpc_pb2_grpc.WatchStub, channel)
        early = watch.Watch()
        await early.write(rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(
            key=b"watch/late/", range_end=b"watch/late0")))
        assert (await early.read()).created
        await kv.Put(rpc_pb2.PutRequest(key=b"watch/late/a", value=b"1"))
        assert [e.kv.key for e in (await early.read()).events] == [b"watch/late/a"]

        late = watch.Watch()
        await late.write(rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(
            key=b"watch/late/", range_end=b"watch/late0", filters=[rpc_pb2.WatchCreateRequest.NODELETE])))
        created = await late.read()
        assert created.created
        assert proxy.upstream_watch_count == 1
        await kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"watch/late/a"))
        put = await kv.Put(rpc_pb2.PutRequest(key=b"watch/late/b", value=b"2"))
        assert created.header.revision < put.header.revision
        # The late watcher filtered out the delete; the early one sees both.
        late_events = (await late.read()).events
        assert [(e.type, e.kv.key) for e in late_events] == [(kv_pb2.Event.PUT, b"watch/late/b")]
        assert (await early.read()).events[0].type == kv_pb2.Event.DELETE
        assert (await early.read()).events[0].kv.key == b"watch/late/b"
        early.cancel()
        late.cancel()


async def test_watch_from_a_compacted_revision_is_canceled_with_the_compact_revision(
        etcd: EtcdCluster, start_proxy: ProxyFactory) -> None:
    proxy = await start_proxy(etcd.endpoints)
    async with grpc.aio.insecure_channel(proxy_endpoint(proxy)) as channel:
        kv = stub(rpc_pb2_grpc.KVStub, channel)
        old = await kv.Put(rpc_pb2.PutRequest(key=b"watch/compacted", value=b"1"))
        newer = await kv.Put(rpc_pb2.PutRequest(key=b"watch/compacted", value=b"2"))
        await kv.Compact(rpc_pb2.CompactionRequest(revision=newer.header.revision))
        stream = stub(rpc_pb2_grpc.WatchStub, channel).Watch()
        await stream.write(rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(
            key=b"watch/compacted", start_revision=old.header.revision, watch_id=7)))
        responses = [await stream.read(), await stream.read()]
        assert responses[0].created and responses[0].watch_id == 7
        assert responses[1].canceled and responses[1].watch_id == 7
        assert responses[1].compact_revision == newer.header.revision
        stream.cancel()
    await until(lambda: proxy.upstream_watch_count == 0, "the canceled upstream watch is dropped")


# --- Lease ---


async def test_lease_grant_and_keepalive_through_the_proxy(etcd: EtcdCluster,
                                                          start_proxy: ProxyFactory) -> None:
    proxy = await start_proxy(etcd.endpoints)
    endpoint = proxy_endpoint(proxy)
    granted = await etcdctl(endpoint, "lease", "grant", "30")
    lease_hex = granted.split()[1]
    assert granted.strip() == f"lease {lease_hex} granted with TTL(30s)"
    kept = await etcdctl(endpoint, "lease", "keep-alive", "--once", lease_hex)
    assert kept.strip() == f"lease {lease_hex} keepalived with TTL(30)"
    await etcdctl(endpoint, "put", "lease/k", "v", f"--lease={lease_hex}")
    assert "lease/k" in await etcdctl(endpoint, "lease", "timetolive", lease_hex, "--keys")


async def test_concurrent_keepalives_of_one_lease_send_one_upstream_request(
        etcd: EtcdCluster, start_proxy: ProxyFactory) -> None:
    proxy = await start_proxy(etcd.endpoints)
    async with grpc.aio.insecure_channel(proxy_endpoint(proxy)) as channel:
        lease = await stub(rpc_pb2_grpc.LeaseStub, channel).LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=20))
    hub = proxy.keepalive_hub
    assert hub is not None
    answers = await asyncio.gather(*(hub.keep_alive(lease.ID, ()) for _ in range(3)))
    assert [(a.ID, a.TTL) for a in answers] == [(lease.ID, 20)] * 3
    assert hub.upstream_keepalives_sent == 1
    assert hub.coalesced == 2


# --- namespace ---


async def test_namespace_prefixes_every_key_and_strips_it_from_answers(
        etcd: EtcdCluster, start_proxy: ProxyFactory, direct: grpc.aio.Channel) -> None:
    proxy = await start_proxy(etcd.endpoints, namespace="ns1/")
    endpoint = proxy_endpoint(proxy)
    watcher = await etcdctl_watch(endpoint, "--prefix", "app/")
    try:
        assert proxy.watch_hub is not None
        await until(lambda: proxy.upstream_watch_count == 1, "watch created upstream")
        await etcdctl(endpoint, "put", "app/x", "1")
        assert watcher.stdout is not None
        assert await read_lines(watcher.stdout, 3) == ["PUT", "app/x", "1"]
    finally:
        watcher.kill()
        await watcher.wait()

    stored = await stub(rpc_pb2_grpc.KVStub, direct).Range(rpc_pb2.RangeRequest(key=b"ns1/app/x"))
    assert stored.kvs[0].value == b"1"
    await stub(rpc_pb2_grpc.KVStub, direct).Put(rpc_pb2.PutRequest(key=b"outside", value=b"hidden"))
    assert await etcdctl(endpoint, "get", "", "--from-key") == "app/x\n1\n"
    assert await etcdctl(endpoint, "del", "app/", "--prefix", "--prev-kv") == "1\napp/x\n1\n"
    assert (await stub(rpc_pb2_grpc.KVStub, direct).Range(rpc_pb2.RangeRequest(key=b"ns1/app/x"))).count == 0


# --- Cluster ---


async def test_member_list_is_the_clusters_unless_the_proxy_advertises_itself(
        etcd: EtcdCluster, start_proxy: ProxyFactory, direct: grpc.aio.Channel) -> None:
    plain = await start_proxy(etcd.endpoints)
    assert ", started, m0, " in await etcdctl(proxy_endpoint(plain), "member", "list")

    registering = await start_proxy(etcd.endpoints, advertise_client_url="127.0.0.1:23799",
                                    resolver_prefix="proxy-test-registry", resolver_ttl=10)
    key = b"proxy-test-registry/127.0.0.1:23799"
    kv = stub(rpc_pb2_grpc.KVStub, direct)

    async def registered() -> rpc_pb2.RangeResponse:
        for _ in range(200):
            found: rpc_pb2.RangeResponse = await kv.Range(rpc_pb2.RangeRequest(key=key))
            if found.kvs:
                return found
            await asyncio.sleep(0.025)
        raise AssertionError("proxy never registered")

    found = await registered()
    update = json.loads(found.kvs[0].value)
    assert update["Op"] == 0 and update["Addr"] == "127.0.0.1:23799"
    assert "name" in json.loads(update["Metadata"])
    assert found.kvs[0].lease != 0
    listing = await etcdctl(proxy_endpoint(registering), "member", "list")
    assert listing.strip().endswith(", 127.0.0.1:23799, false")


# --- failover ---


async def test_reads_and_new_writes_continue_when_the_first_endpoint_dies(
        etcd3: EtcdCluster, start_proxy: ProxyFactory) -> None:
    proxy = await start_proxy(etcd3.endpoints)
    endpoint = proxy_endpoint(proxy)
    await etcdctl(endpoint, "put", "failover/k", "before")
    async with grpc.aio.insecure_channel(endpoint) as channel:
        watch = stub(rpc_pb2_grpc.WatchStub, channel).Watch()
        await watch.write(rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"failover/k")))
        assert (await watch.read()).created

        etcd3.members[0].kill()
        assert await etcdctl(endpoint, "get", "failover/k") == "failover/k\nbefore\n"
        assert await etcdctl(endpoint, "get", "failover/k", "--consistency=s") == "failover/k\nbefore\n"
        assert proxy.upstream is not None and proxy.upstream.current_target != etcd3.endpoints[0]
        await etcdctl(endpoint, "put", "failover/k", "after")
        # The watch moved to a surviving member and resumed without a gap.
        event = (await asyncio.wait_for(watch.read(), 15)).events[0]
        assert (event.kv.key, event.kv.value) == (b"failover/k", b"after")
        watch.cancel()


# --- running it ---


async def test_serve_proxy_serves_until_stopped(etcd: EtcdCluster) -> None:
    port = free_port()
    ready, stop = asyncio.Event(), asyncio.Event()
    config = ProxyConfig(endpoints=[f"http://{etcd.endpoints[0]}"], listen_addr=f"127.0.0.1:{port}")
    serving = asyncio.get_running_loop().create_task(serve_proxy(config, ready=ready, stop=stop))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        assert (await etcdctl(f"127.0.0.1:{port}", "put", "serve/k", "v")).strip() == "OK"
    finally:
        stop.set()
        await asyncio.wait_for(serving, 10)
    with pytest.raises(AssertionError):
        await etcdctl(f"127.0.0.1:{port}", "get", "serve/k", "--dial-timeout=300ms")


async def test_pyetcd_grpc_proxy_start_command_serves_etcdctl(etcd: EtcdCluster) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pyetcd.cli", "grpc-proxy", "start", f"--endpoints={etcd.endpoints[0]}",
        f"--listen-addr=127.0.0.1:{port}", "--namespace=cli/",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                await etcdctl(f"127.0.0.1:{port}", "put", "k", "from-cli", "--dial-timeout=200ms")
                break
            except AssertionError:
                await asyncio.sleep(0.05)
        async with grpc.aio.insecure_channel(etcd.endpoints[0]) as channel:
            stored = await stub(rpc_pb2_grpc.KVStub, channel).Range(rpc_pb2.RangeRequest(key=b"cli/k"))
        assert [kv.value for kv in stored.kvs] == [b"from-cli"]
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 10) == -signal.SIGTERM  # as etcd's grpc-proxy ends


async def test_a_write_that_may_have_applied_is_not_retried_but_a_read_is(
        etcd: EtcdCluster, start_proxy: ProxyFactory, direct: grpc.aio.Channel) -> None:
    # A member that takes every KV call and then fails it as a timed-out proposal does.
    seen: list[bytes] = []

    async def time_out(request: Any, context: Any) -> None:
        seen.append(request.key)
        await context.abort(grpc.StatusCode.UNAVAILABLE, "etcdserver: request timed out")

    failing = grpc.aio.server()
    failing.add_generic_rpc_handlers((service_handler(
        rpc_pb2.DESCRIPTOR.services_by_name["KV"],
        {name: time_out for name in ("Range", "Put", "DeleteRange", "Txn", "Compact")}),))
    failing_port = failing.add_insecure_port("127.0.0.1:0")
    await failing.start()
    try:
        endpoints = [f"127.0.0.1:{failing_port}", etcd.endpoints[0]]
        writer = await start_proxy(endpoints)
        async with grpc.aio.insecure_channel(proxy_endpoint(writer)) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub(rpc_pb2_grpc.KVStub, channel).Put(rpc_pb2.PutRequest(key=b"retry/w", value=b"v"))
        assert (raised.value.code(), raised.value.details()) == (grpc.StatusCode.UNAVAILABLE,
                                                                 "etcdserver: request timed out")
        assert seen == [b"retry/w"]
        kv = stub(rpc_pb2_grpc.KVStub, direct)
        assert (await kv.Range(rpc_pb2.RangeRequest(key=b"retry/w"))).count == 0

        await kv.Put(rpc_pb2.PutRequest(key=b"retry/r", value=b"real"))
        reader = await start_proxy(endpoints)
        assert await etcdctl(proxy_endpoint(reader), "get", "retry/r") == "retry/r\nreal\n"
        assert seen == [b"retry/w", b"retry/r"]
    finally:
        await failing.stop(grace=None)


async def test_a_write_to_an_unreachable_endpoint_goes_to_the_next_one(
        etcd: EtcdCluster, start_proxy: ProxyFactory) -> None:
    proxy = await start_proxy([f"127.0.0.1:{free_port()}", etcd.endpoints[0]])
    assert (await etcdctl(proxy_endpoint(proxy), "put", "retry/unreachable", "v")).strip() == "OK"
    assert proxy.upstream is not None and proxy.upstream.current_target == etcd.endpoints[0]
