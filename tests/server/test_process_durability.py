"""Every write a client saw acknowledged survives a crash (kill -9) and a clean shutdown.

A put is acknowledged only after its Raft entry is on disk and applied, so restarting
on the same data directory must show each acknowledged key with the revision its
answer carried.
"""

from __future__ import annotations

import asyncio
import signal

import grpc

from etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.helpers.servers import ServerProcess, StartServer
from tests.http.httpget import http_get

WRITERS = 24
ACKS_BEFORE_CRASH = 300


def prefix_end(prefix: bytes) -> bytes:
    return prefix[:-1] + bytes([prefix[-1] + 1])


async def stored_revisions(endpoint: str, prefix: bytes) -> dict[bytes, tuple[bytes, int]]:
    """key -> (value, mod_revision) of every key under `prefix`, read linearizably."""
    async with grpc.aio.insecure_channel(endpoint) as channel:
        answer = await rpc_pb2_grpc.KVStub(channel).Range(
            rpc_pb2.RangeRequest(key=prefix, range_end=prefix_end(prefix)), timeout=10)
    return {kv.key: (kv.value, kv.mod_revision) for kv in answer.kvs}


async def put_until(server: ServerProcess, prefix: bytes, enough: int,
                    then: str) -> dict[bytes, tuple[bytes, int]]:
    """Concurrent puts until `enough` are acknowledged; then crash or stop the server while
    more are in flight. Returns key -> (value, revision) of every acknowledged put."""
    acked: dict[bytes, tuple[bytes, int]] = {}
    reached = asyncio.Event()

    async def writer(stub: rpc_pb2_grpc.KVStub, number: int) -> None:
        sequence = 0
        while True:
            key = prefix + b"%02d/%05d" % (number, sequence)
            value = b"value-%d-%d" % (number, sequence)
            try:
                answer = await stub.Put(rpc_pb2.PutRequest(key=key, value=value), timeout=10)
            except grpc.aio.AioRpcError:
                return  # the server went away: this put may or may not have happened
            acked[key] = (value, answer.header.revision)
            sequence += 1
            if len(acked) >= enough:
                reached.set()

    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        stub = rpc_pb2_grpc.KVStub(channel)
        writers = [asyncio.create_task(writer(stub, number)) for number in range(WRITERS)]
        await reached.wait()
        # Blocking on purpose: no acknowledgement is recorded while the server goes down.
        if then == "kill":
            server.kill()
        else:
            assert server.stop() == -signal.SIGTERM, server.log_tail()  # as etcd: killed by the signal
        await asyncio.wait_for(asyncio.gather(*writers), 30)
    return acked


async def test_every_acknowledged_put_survives_kill_9(start_server: StartServer) -> None:
    server = start_server("pyetcd", name="crash")
    acked = await put_until(server, b"/crash/", ACKS_BEFORE_CRASH, then="kill")
    assert len(acked) >= ACKS_BEFORE_CRASH
    server.start()
    stored = await stored_revisions(server.endpoint, b"/crash/")
    missing = {key for key in acked if key not in stored}
    assert not missing, f"{len(missing)} acknowledged puts lost, e.g. {sorted(missing)[:3]}"
    assert {key: stored[key] for key in acked} == acked
    # Revisions are dense: nothing that was acknowledged sits in a hole left by a lost entry.
    revisions = sorted(rev for _, rev in stored.values())
    assert revisions == list(range(revisions[0], revisions[0] + len(revisions)))


async def test_sigterm_while_writing_exits_0_and_keeps_every_acknowledged_put(
        start_server: StartServer) -> None:
    server = start_server("pyetcd", name="term")
    acked = await put_until(server, b"/term/", 100, then="stop")
    server.start()
    stored = await stored_revisions(server.endpoint, b"/term/")
    assert {key: stored.get(key) for key in acked} == acked
    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        answer = await rpc_pb2_grpc.KVStub(channel).Put(rpc_pb2.PutRequest(key=b"/term/after", value=b"v"),
                                                        timeout=10)
    assert answer.header.revision == max(rev for _, rev in stored.values()) + 1
    # The cluster version decided before the stop is read back from the store, as etcd's Recover does.
    assert http_get(server.client_url + "/version").body == b'{"etcdserver":"3.4.23","etcdcluster":"3.4.0"}'
    assert "etcdserver/membership: set the cluster version to 3.4 from store" in server.log_path.read_text()
