"""kill -9 at the dangerous moments: while Raft snapshots are taken, while a compaction or a defragment runs,
and with a torn write at the end of the Raft log.

After every crash the member restarts on the same data directory. Its Raft log and store must open (checked
offline first, as a restart opens them), it must serve, and every write a client saw acknowledged must be
there with the revision its answer carried. Crash moments come from a random generator seeded with SEED;
which phase a kill hits still depends on the machine's speed, so every check holds whatever the kill
interrupted.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest

from etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from storage.mvcc import MvccStore
from storage.mvcc.kvstore import DEFRAG_DIR
from storage.raftlog import DurableLog
from storage.raftlog.records import FRAME, RecordKind, scan
from storage.raftlog.segments import list_segments
from tests.helpers.servers import ServerProcess, StartServer
from tests.server.test_process_durability import prefix_end

pytestmark = [pytest.mark.timeout(120)]

SEED = 3423
WRITERS = 16
COMPACTED = "etcdserver: mvcc: required revision has been compacted"
SNAPSHOT_FLAGS = ("--snapshot-count=100", "--experimental-snapshot-catchup-entries=50")
"""A Raft snapshot (store sync, snapshot record, log compaction) every 100 entries: many per second."""

Acked = dict[bytes, tuple[bytes, int]]
"""key -> (value, revision) of every acknowledged put."""


# --- helpers -------------------------------------------------------------------------------------

@asynccontextmanager
async def puts_in_flight(endpoint: str, prefix: bytes, acked: Acked, *,
                         writers: int = WRITERS) -> AsyncIterator[grpc.aio.Channel]:
    """Concurrent puts of fresh keys under `prefix` while the body runs; the body brings the server down.

    A put lands in `acked` as soon as its answer arrives; a put whose call fails may or may not have happened.
    The body gets the writers' (connected) channel, so a request it sends reaches the server at once.
    """
    async def writer(stub: rpc_pb2_grpc.KVStub, number: int) -> None:
        sequence = 0
        while True:
            key = prefix + b"%02d/%06d" % (number, sequence)
            value = b"v-%d-%d" % (number, sequence)
            try:
                answer = await stub.Put(rpc_pb2.PutRequest(key=key, value=value), timeout=10)
            except grpc.aio.AioRpcError:
                return
            acked[key] = (value, answer.header.revision)
            sequence += 1

    async with grpc.aio.insecure_channel(endpoint) as channel:
        stub = rpc_pb2_grpc.KVStub(channel)
        tasks = [asyncio.create_task(writer(stub, number)) for number in range(writers)]
        try:
            yield channel
        except BaseException:
            for task in tasks:
                task.cancel()
            raise
        await asyncio.wait_for(asyncio.gather(*tasks), 30)


def open_channel(endpoint: str) -> grpc.aio.Channel:
    """A client channel that takes answers of any size (a whole defragment test's keyspace is ~10 MB)."""
    return grpc.aio.insecure_channel(endpoint, options=[("grpc.max_receive_message_length", -1)])


async def stored_revisions(endpoint: str, prefix: bytes) -> Acked:
    """key -> (value, mod_revision) of every key under `prefix`, read linearizably."""
    async with open_channel(endpoint) as chan:
        answer = await rpc_pb2_grpc.KVStub(chan).Range(
            rpc_pb2.RangeRequest(key=prefix, range_end=prefix_end(prefix)), timeout=10)
    return {kv.key: (kv.value, kv.mod_revision) for kv in answer.kvs}


async def kv_stub_call(endpoint: str, method: str, request: object) -> object:
    async with grpc.aio.insecure_channel(endpoint) as channel:
        return await getattr(rpc_pb2_grpc.KVStub(channel), method)(request, timeout=10)


async def hash_kv(endpoint: str, revision: int = 0) -> rpc_pb2.HashKVResponse:
    async with grpc.aio.insecure_channel(endpoint) as channel:
        answer: rpc_pb2.HashKVResponse = await rpc_pb2_grpc.MaintenanceStub(channel).HashKV(
            rpc_pb2.HashKVRequest(revision=revision), timeout=10)
    return answer


async def put_many(endpoint: str, items: list[tuple[bytes, bytes]], *, per_txn: int = 1,
                   concurrency: int = WRITERS) -> dict[bytes, list[tuple[int, bytes]]]:
    """Write `items` in order per key (`per_txn` distinct keys per Txn); returns key -> [(revision, value)]."""
    history: dict[bytes, list[tuple[int, bytes]]] = {}
    queue: asyncio.Queue[list[tuple[bytes, bytes]]] = asyncio.Queue()
    if per_txn == 1:
        # Puts of one key stay in order: each key's puts go to the same worker.
        lanes: dict[int, list[tuple[bytes, bytes]]] = {}
        for key, value in items:
            lanes.setdefault(zlib.crc32(key) % concurrency, []).append((key, value))
        for lane in lanes.values():
            queue.put_nowait(lane)
    else:
        for start in range(0, len(items), per_txn):
            queue.put_nowait(items[start:start + per_txn])

    async def worker(stub: rpc_pb2_grpc.KVStub) -> None:
        while not queue.empty():
            group = queue.get_nowait()
            if per_txn == 1:
                for key, value in group:
                    answer = await stub.Put(rpc_pb2.PutRequest(key=key, value=value), timeout=10)
                    history.setdefault(key, []).append((answer.header.revision, value))
                continue
            txn = rpc_pb2.TxnRequest(success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=k, value=v))
                                              for k, v in group])
            answer = await stub.Txn(txn, timeout=10)
            for key, value in group:
                history.setdefault(key, []).append((answer.header.revision, value))

    async with grpc.aio.insecure_channel(endpoint) as channel:
        stub = rpc_pb2_grpc.KVStub(channel)
        await asyncio.gather(*(worker(stub) for _ in range(concurrency)))
    return history


async def acks_reach(acked: Acked, count: int) -> None:
    """Until `count` puts are acknowledged (the writers keep going)."""
    while len(acked) < count:
        await asyncio.sleep(0.01)


def store_dir(server: ServerProcess) -> Path:
    return server.data_dir / "member" / "snap" / "db"


def raft_log_dir(server: ServerProcess) -> Path:
    return server.data_dir / "member" / "wal"


def check_data_dir_opens(server: ServerProcess) -> tuple[int, int]:
    """Open the dead member's Raft log and store as a restart does; returns (log first index, applied index).

    The store holds nothing the log lost (applied <= last index), and the log dropped nothing the store lacks:
    the recorded snapshot and the compacted prefix are both at or below what the store has applied.
    """
    assert server.process is not None and server.process.poll() is not None, "the member must be down"
    raft_log = DurableLog.open(raft_log_dir(server))
    try:
        first, last = raft_log.first_index(), raft_log.last_index()
        snapshot_index = raft_log.snapshot().metadata.index
    finally:
        raft_log.close()
    with MvccStore(store_dir(server)) as store:
        applied = store.consistent_index
        assert store.current_revision >= 1
    assert snapshot_index <= applied <= last, (snapshot_index, applied, last)
    assert first - 1 <= applied, (first, applied)
    return first, applied


def assert_all_acked_stored(acked: Acked, stored: Acked) -> None:
    missing = sorted(key for key in acked if key not in stored)
    assert not missing, f"{len(missing)} acknowledged puts lost, e.g. {missing[:3]}"
    wrong = {key: (acked[key], stored[key]) for key in acked if stored[key] != acked[key]}
    assert not wrong, f"{len(wrong)} acknowledged puts changed, e.g. {list(wrong.items())[:3]}"


def value_at(history: list[tuple[int, bytes]], revision: int) -> bytes:
    """The value a key's (revision, value) history gives it at `revision`."""
    return max((rev, value) for rev, value in history if rev <= revision)[1]


async def get_at(endpoint: str, key: bytes, revision: int) -> bytes:
    answer = await kv_stub_call(endpoint, "Range", rpc_pb2.RangeRequest(key=key, revision=revision))
    assert isinstance(answer, rpc_pb2.RangeResponse)
    assert len(answer.kvs) == 1, answer
    return bytes(answer.kvs[0].value)


async def current_revision(endpoint: str) -> int:
    answer = await kv_stub_call(endpoint, "Range", rpc_pb2.RangeRequest(key=b"\0", range_end=b"\0",
                                                                        count_only=True))
    assert isinstance(answer, rpc_pb2.RangeResponse)
    return int(answer.header.revision)


async def assert_serves(server: ServerProcess) -> None:
    """A put after the restart takes the next revision and reads back."""
    before = await current_revision(server.endpoint)
    answer = await kv_stub_call(server.endpoint, "Put", rpc_pb2.PutRequest(key=b"/after-crash", value=b"ok"))
    assert isinstance(answer, rpc_pb2.PutResponse)
    assert answer.header.revision == before + 1
    assert await get_at(server.endpoint, b"/after-crash", 0) == b"ok"


# --- kill -9 while Raft snapshots are taken ------------------------------------------------------

async def test_kill_9_while_raft_snapshots_are_taken_keeps_every_acknowledged_put(
        start_server: StartServer) -> None:
    rng = random.Random(SEED)
    server = start_server("pyetcd", name="snap", extra_args=SNAPSHOT_FLAGS)
    acked: Acked = {}
    applied_before = 0
    for crash in range(4):
        async with puts_in_flight(server.endpoint, b"/snap/%d/" % crash, acked):
            await acks_reach(acked, len(acked) + 300)
            await asyncio.sleep(rng.uniform(0.0, 0.5))
            server.kill()
        first_index, applied = check_data_dir_opens(server)
        # Snapshots really were taken, and the log compacted behind them, before each crash.
        assert applied >= applied_before + 300
        assert first_index > 1
        applied_before = applied
        server.start()
        stored = await stored_revisions(server.endpoint, b"/snap/")
        assert_all_acked_stored(acked, stored)
    # Revisions are dense: no acknowledged put sits beyond a hole left by a lost entry.
    revisions = sorted(rev for _, rev in stored.values())
    assert revisions == list(range(2, 2 + len(revisions)))
    await assert_serves(server)


# --- kill -9 during compaction ---------------------------------------------------------------

async def compact_outcome(stub: rpc_pb2_grpc.KVStub, revision: int, physical: bool) -> bool:
    """Ask for a compaction; True if it was acknowledged, False if the crash cut the call short."""
    try:
        await stub.Compact(rpc_pb2.CompactionRequest(revision=revision, physical=physical), timeout=10)
    except grpc.aio.AioRpcError:
        return False
    return True


async def test_kill_9_during_compaction_leaves_the_old_or_the_new_compact_revision(
        start_server: StartServer) -> None:
    rng = random.Random(SEED + 1)
    server = start_server("pyetcd", name="compact", extra_args=SNAPSHOT_FLAGS)
    hot_keys = [b"/compact/hot/%d" % n for n in range(8)]
    history = await put_many(server.endpoint, [(key, b"%s=%d" % (key, version))
                                               for version in range(200) for key in hot_keys])
    history.update(await put_many(server.endpoint, [(b"/compact/many/%05d" % n, b"x" * rng.randint(10, 200))
                                                    for n in range(3000)], per_txn=25))
    acked: Acked = {key: (versions[-1][1], versions[-1][0]) for key, versions in history.items()}
    hot_revisions = sorted(rev for key in hot_keys for rev, _ in history[key])
    compacted = -1  # what HashKV reports for a store never compacted, as etcd does
    # (physical, seconds from sending Compact to the crash): right away, and at seeded moments.
    rounds = [(False, 0.0), (True, rng.uniform(0.0, 0.02)), (False, rng.uniform(0.0, 0.02))]
    survived = []
    for number, (physical, delay) in enumerate(rounds):
        # Each round compacts further into the hot keys' history while fresh puts keep coming.
        target = hot_revisions[(number + 1) * len(hot_revisions) // (len(rounds) + 1)]
        async with puts_in_flight(server.endpoint, b"/compact/fresh/%d/" % number, acked) as chan:
            await acks_reach(acked, len(acked) + 50)
            request = asyncio.create_task(compact_outcome(rpc_pb2_grpc.KVStub(chan), target, physical))
            await asyncio.sleep(delay)
            server.kill()
            acknowledged = await request
        check_data_dir_opens(server)
        server.start()
        answer = await hash_kv(server.endpoint)
        assert answer.compact_revision in ((target,) if acknowledged else (compacted, target))
        compacted = answer.compact_revision
        survived.append(compacted == target)
        # Reads agree with the compact revision the store reports, and the history it keeps is intact.
        key = hot_keys[number]
        if compacted == target:
            with pytest.raises(grpc.aio.AioRpcError) as below:
                await get_at(server.endpoint, key, target - 1)
            assert (below.value.code(), below.value.details()) == (grpc.StatusCode.OUT_OF_RANGE, COMPACTED)
        else:
            assert await get_at(server.endpoint, key, target - 1) == value_at(history[key], target - 1)
        for hot in hot_keys:
            assert await get_at(server.endpoint, hot, target) == value_at(history[hot], target)
        assert_all_acked_stored(acked, await stored_revisions(server.endpoint, b"/compact/"))
        # The compacted store hashes the same after one more restart.
        assert server.stop() == -signal.SIGTERM, server.log_tail()
        server.start()
        again = await hash_kv(server.endpoint, answer.header.revision)
        assert (again.hash, again.compact_revision) == (answer.hash, answer.compact_revision)
    print(f"compactions that outlived the crash: {survived}")
    await assert_serves(server)


# --- kill -9 during defragment ---------------------------------------------------------------

async def defragment(stub: rpc_pb2_grpc.MaintenanceStub) -> float | None:
    """Defragment over a connected channel; how long the call took, or None if a crash cut it short."""
    started = time.monotonic()
    try:
        await stub.Defragment(rpc_pb2.DefragmentRequest(), timeout=30)
    except grpc.aio.AioRpcError:
        return None
    return time.monotonic() - started


async def test_kill_9_during_defragment_keeps_the_store_and_its_hash(start_server: StartServer) -> None:
    rng = random.Random(SEED + 2)
    server = start_server("pyetcd", name="defrag", extra_args=SNAPSHOT_FLAGS)
    values = [(b"/defrag/big/%05d" % n, rng.randbytes(rng.randint(1024, 4096))) for n in range(4000)]
    history = await put_many(server.endpoint, values, per_txn=40)
    # Deleting a quarter and compacting leaves free pages, so the defragment has real work to do.
    await kv_stub_call(server.endpoint, "DeleteRange", rpc_pb2.DeleteRangeRequest(
        key=b"/defrag/big/00000", range_end=b"/defrag/big/01000"))
    await kv_stub_call(server.endpoint, "Compact", rpc_pb2.CompactionRequest(
        revision=await current_revision(server.endpoint), physical=True))
    await put_many(server.endpoint, [(b"/defrag/marker", b"above the compact revision, so HashKV can use it")])
    before = await hash_kv(server.endpoint)
    async with grpc.aio.insecure_channel(server.endpoint) as chan:
        await rpc_pb2_grpc.MaintenanceStub(chan).Status(rpc_pb2.StatusRequest(), timeout=10)  # connect first
        duration = await defragment(rpc_pb2_grpc.MaintenanceStub(chan))
    assert duration is not None
    assert (await hash_kv(server.endpoint, before.header.revision)).hash == before.hash
    acked: Acked = {key: (versions[-1][1], versions[-1][0]) for key, versions in history.items()
                    if key >= b"/defrag/big/01000"}
    copies_left = 0
    for crash in range(4):
        async with puts_in_flight(server.endpoint, b"/defrag/fresh/%d/" % crash, acked, writers=4) as chan:
            await acks_reach(acked, len(acked) + 20)
            request = asyncio.create_task(defragment(rpc_pb2_grpc.MaintenanceStub(chan)))
            await asyncio.sleep(rng.uniform(0.0, 1.2 * duration))
            server.kill()
            await request
        # A crash in the middle of the copy leaves it behind; the next open removes it.
        copies_left += (store_dir(server) / DEFRAG_DIR).exists()
        check_data_dir_opens(server)
        assert not (store_dir(server) / DEFRAG_DIR).exists()
        server.start()
        again = await hash_kv(server.endpoint, before.header.revision)
        assert (again.hash, again.compact_revision) == (before.hash, before.compact_revision)
        assert_all_acked_stored(acked, await stored_revisions(server.endpoint, b"/defrag/"))
    print(f"defragment took {duration:.3f}s; {copies_left} of 4 crashes hit it while copying")
    await assert_serves(server)


# --- a torn write at the end of the Raft log -------------------------------------------------

async def test_torn_write_at_the_end_of_the_raft_log_is_dropped_on_restart(start_server: StartServer) -> None:
    rng = random.Random(SEED + 3)
    server = start_server("pyetcd", name="torn", extra_args=SNAPSHOT_FLAGS)
    acked: Acked = {}
    async with puts_in_flight(server.endpoint, b"/torn/0/", acked):
        await acks_reach(acked, 200)
        server.kill()
    tail = list_segments(raft_log_dir(server))[-1][1]
    intact = tail.stat().st_size
    # What a crash halfway through an append leaves: a record header promising more bytes than follow.
    with open(tail, "ab") as segment:
        segment.write(FRAME.pack(4096, 0xDEADBEEF, RecordKind.BATCH) + rng.randbytes(1000))
    server.start()
    assert_all_acked_stored(acked, await stored_revisions(server.endpoint, b"/torn/"))
    # The torn bytes were cut off: what the restarted member appended reads back from where they began.
    _, valid = scan(tail.read_bytes())
    assert valid > intact
    async with puts_in_flight(server.endpoint, b"/torn/1/", acked):
        await acks_reach(acked, len(acked) + 200)
        server.kill()
    check_data_dir_opens(server)
    server.start()
    assert_all_acked_stored(acked, await stored_revisions(server.endpoint, b"/torn/"))
    await assert_serves(server)
