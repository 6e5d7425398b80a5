"""The clients one load-generator process runs: closed-loop unary callers, keep-alive streams,
watchers and a paced writer, all on grpc.aio over the generated etcd stubs.

Only what completes inside the measurement window counts as an operation; every failed RPC
is counted by its gRPC status, whenever it happens, and nothing is retried.
"""

from __future__ import annotations

import asyncio
import random
import struct
import time
from array import array
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import grpc

from benchmarks.compare.plan import KEYSPACE, Workload
from etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc

KEY_PREFIX = b"k"
WATCH_PREFIX = b"w"  # a prefix of its own, so watchers see only the paced writer's puts
WATCH_RANGE_END = b"x"
TXN_MOD_REVISION_BOUND = 2**62  # "mod_revision < bound" always holds: the txn path without CAS failures
MIXED_READ_SHARE = 0.9
LEASE_TTL_S = 60
ERROR_PAUSE_S = 0.01  # after a failure: keeps a dead server from turning the client into a spin loop
MAX_WRITES_IN_FLIGHT = 64
CLIENTS_PER_CONN = 16
STAMP = struct.Struct("<d")  # the writer's send time, at the front of each watched value
CHANNEL_OPTIONS = [
    ("grpc.use_local_subchannel_pool", 1),  # one TCP connection per channel, like etcd's `benchmark --conns`
    ("grpc.enable_retries", 0),  # a failure is reported, never retried away
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]


def key(index: int, prefix: bytes = KEY_PREFIX) -> bytes:
    """8-byte keys: a one-letter prefix and seven digits."""
    return prefix + b"%07d" % index


@dataclass(frozen=True, slots=True)
class LoadSpec:
    """One process's share of one run."""

    workload: Workload
    endpoints: tuple[str, ...]
    clients: int  # watchers, for the watch workload
    first_client: int  # global number of this share's first client; clients spread over endpoints by it
    value_size: int
    seed: int
    writer_rate: float = 0.0  # watch: puts per second this process issues
    rpc_timeout_s: float = 10.0
    clients_per_conn: int = CLIENTS_PER_CONN
    keyspace: int = KEYSPACE  # unary workloads draw their keys from key(0) .. key(keyspace - 1)


@dataclass(frozen=True, slots=True)
class Window:
    """The measurement window, on the machine-wide monotonic clock every process shares."""

    start: float
    end: float


@dataclass(slots=True)
class Recorder:
    """Latencies of the operations completed inside the window, and every error of the run."""

    window: Window
    latencies: array[float] = field(default_factory=lambda: array("d"))
    errors: Counter[str] = field(default_factory=Counter)

    def record(self, latency: float, finished: float) -> None:
        if self.window.start <= finished < self.window.end:
            self.latencies.append(latency)

    def error(self, status: str) -> None:
        self.errors[status] += 1


Client = Callable[[Recorder, float], Coroutine[Any, Any, None]]


class Channels:
    """Client channels of one process: each endpoint gets a new connection every `per_conn` clients."""

    def __init__(self, endpoints: tuple[str, ...], per_conn: int) -> None:
        self.endpoints = endpoints
        self.per_conn = per_conn
        self._open: dict[str, list[grpc.aio.Channel]] = {}
        self._users: Counter[str] = Counter()

    def for_client(self, number: int) -> grpc.aio.Channel:
        endpoint = self.endpoints[number % len(self.endpoints)]
        channels = self._open.setdefault(endpoint, [])
        if self._users[endpoint] % self.per_conn == 0:
            channels.append(grpc.aio.insecure_channel(endpoint, options=CHANNEL_OPTIONS))
        self._users[endpoint] += 1
        return channels[-1]

    async def close(self) -> None:
        for channels in self._open.values():
            for channel in channels:
                await channel.close()
        self._open.clear()


def unary_sender(workload: Workload, kv: Any, rng: random.Random, value: bytes,
                 timeout: float, keyspace: int = KEYSPACE) -> Callable[[], Awaitable[object]]:
    """A function issuing one request of `workload` on a random key of the keyspace."""
    put = rpc_pb2.PutRequest
    if workload is Workload.PUT:
        return lambda: kv.Put(put(key=key(rng.randrange(keyspace)), value=value), timeout=timeout)
    if workload is Workload.RANGE:
        return lambda: kv.Range(rpc_pb2.RangeRequest(key=key(rng.randrange(keyspace))), timeout=timeout)
    if workload is Workload.SERIALIZABLE_RANGE:
        return lambda: kv.Range(
            rpc_pb2.RangeRequest(key=key(rng.randrange(keyspace)), serializable=True), timeout=timeout)
    if workload is Workload.TXN:
        def txn() -> Awaitable[object]:
            k = key(rng.randrange(keyspace))
            compare = rpc_pb2.Compare(key=k, target=rpc_pb2.Compare.MOD, result=rpc_pb2.Compare.LESS,
                                      mod_revision=TXN_MOD_REVISION_BOUND)
            request = rpc_pb2.TxnRequest(compare=[compare], success=[rpc_pb2.RequestOp(
                request_put=put(key=k, value=value))])
            return kv.Txn(request, timeout=timeout)  # type: ignore[no-any-return]
        return txn
    if workload is Workload.MIXED:
        def mixed() -> Awaitable[object]:
            k = key(rng.randrange(keyspace))
            if rng.random() < MIXED_READ_SHARE:
                return kv.Range(rpc_pb2.RangeRequest(key=k), timeout=timeout)  # type: ignore[no-any-return]
            return kv.Put(put(key=k, value=value), timeout=timeout)  # type: ignore[no-any-return]
        return mixed
    raise ValueError(f"{workload} is not a unary workload")


def unary_client(send: Callable[[], Awaitable[object]]) -> Client:
    """A closed loop: one request in flight, the next sent as soon as the last is answered."""
    async def loop(recorder: Recorder, end: float) -> None:
        while (started := time.monotonic()) < end:
            try:
                await send()
            except grpc.aio.AioRpcError as err:
                recorder.error(err.code().name)
                await asyncio.sleep(ERROR_PAUSE_S)
            else:
                finished = time.monotonic()
                recorder.record(finished - started, finished)
    return loop


def keepalive_client(lease: Any, lease_id: int) -> Client:
    """Keeps one lease alive on its own stream, one request in flight; a lost stream is reopened."""
    async def loop(recorder: Recorder, end: float) -> None:
        while time.monotonic() < end:
            call = lease.LeaseKeepAlive()
            try:
                while (started := time.monotonic()) < end:
                    await call.write(rpc_pb2.LeaseKeepAliveRequest(ID=lease_id))
                    answer = await call.read()
                    finished = time.monotonic()
                    if answer is grpc.aio.EOF:
                        recorder.error("EOF")
                        break
                    if answer.TTL <= 0:
                        recorder.error("LEASE_NOT_FOUND")
                    else:
                        recorder.record(finished - started, finished)
            except grpc.aio.AioRpcError as err:
                recorder.error(err.code().name)
                await asyncio.sleep(ERROR_PAUSE_S)
            finally:
                call.cancel()
    return loop


def watcher_client(call: Any) -> Client:
    """Reads an already created watch stream; each event's latency runs from the writer's stamp."""
    async def loop(recorder: Recorder, end: float) -> None:
        try:
            while True:
                answer = await call.read()
                finished = time.monotonic()
                if answer is grpc.aio.EOF:
                    recorder.error("EOF")
                    return
                if answer.canceled:
                    recorder.error("WATCH_CANCELED")
                    return
                for event in answer.events:
                    recorder.record(finished - STAMP.unpack_from(event.kv.value)[0], finished)
        except grpc.aio.AioRpcError as err:
            recorder.error(err.code().name)
    return loop


def paced_writer(kvs: list[Any], rate: float, value_size: int, seed: int, timeout: float) -> Client:
    """Puts under the watched prefix at a fixed rate (open loop), each value stamped with its send time."""
    rng = random.Random(seed)
    padding = b"v" * max(0, value_size - STAMP.size)

    async def put(kv: Any, recorder: Recorder) -> None:
        value = STAMP.pack(time.monotonic()) + padding
        try:
            await kv.Put(rpc_pb2.PutRequest(key=key(rng.randrange(KEYSPACE), WATCH_PREFIX), value=value),
                         timeout=timeout)
        except grpc.aio.AioRpcError as err:
            recorder.error(err.code().name)

    async def loop(recorder: Recorder, end: float) -> None:
        interval = 1.0 / rate
        due = time.monotonic()
        in_flight: set[asyncio.Task[None]] = set()
        sent = 0
        try:
            while due < end:
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                if len(in_flight) < MAX_WRITES_IN_FLIGHT:
                    task = asyncio.create_task(put(kvs[sent % len(kvs)], recorder))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                    sent += 1
                else:
                    recorder.error("WRITER_BACKLOG")  # the server fell this far behind the pace
                due += interval
        finally:
            for task in list(in_flight):
                task.cancel()
    return loop


class LoadSession:
    """One process's share of one run: opens channels and streams (setup), drives the window (run)."""

    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self.channels = Channels(spec.endpoints, spec.clients_per_conn)
        self.clients: list[Client] = []
        self._leases: list[tuple[Any, int]] = []
        self._streams: list[Any] = []

    async def setup(self) -> None:
        spec = self.spec
        numbers = range(spec.first_client, spec.first_client + spec.clients)
        if spec.workload is Workload.LEASE_KEEPALIVE:
            for number in numbers:
                lease = rpc_pb2_grpc.LeaseStub(self.channels.for_client(number))
                granted = await lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=LEASE_TTL_S),
                                                 timeout=spec.rpc_timeout_s)
                self._leases.append((lease, granted.ID))
                self.clients.append(keepalive_client(lease, granted.ID))
        elif spec.workload is Workload.WATCH:
            for number in numbers:
                self.clients.append(watcher_client(await self._create_watch(number)))
            if spec.writer_rate > 0:
                kvs = [rpc_pb2_grpc.KVStub(self.channels.for_client(i)) for i in range(len(spec.endpoints))]
                self.clients.append(paced_writer(kvs, spec.writer_rate, spec.value_size, spec.seed,
                                                 spec.rpc_timeout_s))
        else:
            value = b"v" * spec.value_size
            for number in numbers:
                kv = rpc_pb2_grpc.KVStub(self.channels.for_client(number))
                rng = random.Random(spec.seed * 1_000_003 + number)
                self.clients.append(unary_client(unary_sender(spec.workload, kv, rng, value, spec.rpc_timeout_s,
                                                                spec.keyspace)))

    async def _create_watch(self, number: int) -> Any:
        call = rpc_pb2_grpc.WatchStub(self.channels.for_client(number)).Watch()
        self._streams.append(call)
        create = rpc_pb2.WatchCreateRequest(key=WATCH_PREFIX, range_end=WATCH_RANGE_END)
        await call.write(rpc_pb2.WatchRequest(create_request=create))
        answer = await asyncio.wait_for(call.read(), self.spec.rpc_timeout_s)
        if answer is grpc.aio.EOF or not answer.created or answer.canceled:
            raise RuntimeError(f"watch was not created: {answer}")
        return call

    async def run(self, window: Window) -> tuple[Recorder, float]:
        """Runs every client until the window ends; returns what they recorded and this process's
        CPU seconds inside the window."""
        recorder = Recorder(window)
        cpu = asyncio.create_task(cpu_seconds_within(window))
        tasks = [asyncio.create_task(client(recorder, window.end)) for client in self.clients]
        if tasks:
            # Requests still in flight when the window closes would complete outside it: cancel them.
            await asyncio.wait(tasks, timeout=max(0.0, window.end - time.monotonic()))
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return recorder, await cpu

    async def close(self) -> None:
        for call in self._streams:
            call.cancel()
        # A lease left behind would expire by itself after its TTL, so failures here are ignored.
        await asyncio.gather(*(lease.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=lease_id),
                                                 timeout=self.spec.rpc_timeout_s)
                               for lease, lease_id in self._leases), return_exceptions=True)
        await self.channels.close()


async def cpu_seconds_within(window: Window) -> float:
    """This process's CPU time (all threads, gRPC's included) spent between the window's ends."""
    await asyncio.sleep(max(0.0, window.start - time.monotonic()))
    before = time.process_time()
    await asyncio.sleep(max(0.0, window.end - time.monotonic()))
    return time.process_time() - before
