"""The run's clients: register workers, watchers and a leader poller, all on grpc.aio.

Workers do put, linearizable get, compare-and-set (a txn comparing mod_revision or the
value) and delete on a few registers, each value written at most once, so a value names
the one write that made it. Every register is retired after a fixed number of operations
and a fresh key takes its place: that bounds each key's history and keeps the
linearizability search small, as Jepsen's independent keys do.

Watchers follow the whole prefix across member changes and broken streams, always
resuming at the last revision seen plus one. The poller samples every member's
(term, leader) from Maintenance.Status.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Sequence
from dataclasses import dataclass

import grpc

from etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from etcdpb.mvccpb import kv_pb2
from tests.chaos.cluster import ChaosCluster
from tests.chaos.history import FAIL, INFO, OK, History, StatusSample, WatchEvent
from tests.chaos.linearizability import CAS, DELETE, GET, PUT

PREFIX = "/chaos/"
REGISTER_PREFIX = PREFIX + "r/"


def prefix_end(prefix: bytes) -> bytes:
    """etcd's range end for "every key starting with prefix"."""
    end = bytearray(prefix)
    end[-1] += 1
    return bytes(end)


@dataclass(frozen=True, slots=True)
class WorkloadConfig:
    workers: int = 5
    registers: int = 3
    """Keys in use at once."""
    ops_per_register: int = 120
    """Operations on one key before it is retired."""
    rate: float = 40.0
    """Operations per second over all workers (the harness stays light on a shared machine)."""
    timeout: float = 3.0
    """Client deadline; a write that misses it has an unknown outcome."""
    stale_reads: bool = False
    """Injected client bug: "linearizable" gets are served as serializable reads by whichever member."""


class Keyspace:
    """The registers in use; each slot moves to a fresh key after `ops_per_register` operations."""

    def __init__(self, slots: int, ops_per_register: int) -> None:
        self.ops_per_register = ops_per_register
        self._generation = [0] * slots
        self._used = [0] * slots
        self._keys: dict[str, None] = {}

    @property
    def keys(self) -> list[str]:
        """Every key handed out so far, in order."""
        return list(self._keys)

    def pick(self, rng: random.Random) -> str:
        slot = rng.randrange(len(self._used))
        if self._used[slot] >= self.ops_per_register:
            self._generation[slot] += 1
            self._used[slot] = 0
        self._used[slot] += 1
        key = f"{REGISTER_PREFIX}{slot}-{self._generation[slot]}"
        self._keys.setdefault(key, None)
        return key


def describe_error(err: BaseException) -> str:
    if isinstance(err, grpc.aio.AioRpcError):
        return f"{err.code().name}: {err.details()}"
    return repr(err) if not isinstance(err, TimeoutError) else "client timeout"


class RegisterWorker:
    """One sequential client; what it last saw of each key feeds its compare-and-sets."""

    def __init__(self, process: int, history: History, channels: Sequence[grpc.aio.Channel],
                 keyspace: Keyspace, config: WorkloadConfig, rng: random.Random) -> None:
        self.process = process
        self.history = history
        self.channels = channels
        self.keyspace = keyspace
        self.config = config
        self.rng = rng
        self.member = rng.randrange(len(channels))
        self.known: dict[str, tuple[str | None, int]] = {}
        self._seq = 0

    async def run(self, stop: asyncio.Event) -> None:
        pause = self.config.workers / self.config.rate
        while not stop.is_set():
            failed = await self.one_operation()
            if failed or self.rng.random() < 0.1:
                self.member = self.rng.randrange(len(self.channels))  # as a client fails over
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.rng.uniform(0.5, 1.5) * pause)

    async def one_operation(self) -> bool:
        """Do one random operation; True if it did not succeed."""
        key = self.keyspace.pick(self.rng)
        roll = self.rng.random()
        if roll < 0.4:
            return await self.get(key)
        if roll < 0.65:
            return await self.put(key)
        if roll < 0.9:
            return await self.cas(key)
        return await self.delete(key)

    def _value(self) -> str:
        self._seq += 1
        return f"{self.process}.{self._seq}"

    def _kv(self) -> rpc_pb2_grpc.KVStub:
        return rpc_pb2_grpc.KVStub(self.channels[self.member])

    async def get(self, key: str, *, record_as: int | None = None) -> bool:
        record = self.history.invoke(self.process if record_as is None else record_as, key, GET, self.member)
        try:
            answer = await self._kv().Range(
                rpc_pb2.RangeRequest(key=key.encode(), serializable=self.config.stale_reads),
                timeout=self.config.timeout)
        except (grpc.aio.AioRpcError, TimeoutError) as err:
            self.history.complete(record, FAIL, error=describe_error(err))  # a failed read changed nothing
            return True
        value = answer.kvs[0].value.decode() if answer.kvs else None
        self.known[key] = (value, answer.kvs[0].mod_revision if answer.kvs else 0)
        self.history.complete(record, OK, result=value, revision=answer.header.revision)
        return False

    async def put(self, key: str) -> bool:
        value = self._value()
        record = self.history.invoke(self.process, key, PUT, self.member, value=value)
        try:
            answer = await self._kv().Put(rpc_pb2.PutRequest(key=key.encode(), value=value.encode()),
                                          timeout=self.config.timeout)
        except (grpc.aio.AioRpcError, TimeoutError) as err:
            self.history.complete(record, INFO, error=describe_error(err))
            return True
        self.known[key] = (value, answer.header.revision)
        self.history.complete(record, OK, revision=answer.header.revision)
        return False

    async def cas(self, key: str) -> bool:
        """Compare-and-set from the last (value, mod_revision) this worker saw of the key.

        Values are unique, so "mod_revision is r" holds exactly when "the value is the one
        written at r" does, and the checker can model both compares as a compare on the value.
        """
        expected, mod_revision = self.known.get(key, (None, 0))
        value = self._value()
        if expected is not None and self.rng.random() < 0.5:
            compare = rpc_pb2.Compare(key=key.encode(), target=rpc_pb2.Compare.VALUE,
                                      result=rpc_pb2.Compare.EQUAL, value=expected.encode())
        else:
            compare = rpc_pb2.Compare(key=key.encode(), target=rpc_pb2.Compare.MOD,
                                      result=rpc_pb2.Compare.EQUAL, mod_revision=mod_revision)
        put = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key.encode(), value=value.encode()))
        record = self.history.invoke(self.process, key, CAS, self.member, value=value, expected=expected)
        try:
            answer = await self._kv().Txn(rpc_pb2.TxnRequest(compare=[compare], success=[put]),
                                          timeout=self.config.timeout)
        except (grpc.aio.AioRpcError, TimeoutError) as err:
            self.history.complete(record, INFO, error=describe_error(err))
            return True
        if answer.succeeded:
            self.known[key] = (value, answer.header.revision)
        self.history.complete(record, OK, result=answer.succeeded, revision=answer.header.revision)
        return False

    async def delete(self, key: str) -> bool:
        record = self.history.invoke(self.process, key, DELETE, self.member)
        try:
            answer = await self._kv().DeleteRange(rpc_pb2.DeleteRangeRequest(key=key.encode()),
                                                  timeout=self.config.timeout)
        except (grpc.aio.AioRpcError, TimeoutError) as err:
            self.history.complete(record, INFO, error=describe_error(err))
            return True
        self.known[key] = (None, 0)
        self.history.complete(record, OK, result=answer.deleted > 0, revision=answer.header.revision)
        return False


def watch_event(event: kv_pb2.Event) -> WatchEvent:
    kv = event.kv
    return WatchEvent(revision=kv.mod_revision, key=kv.key.decode(),
                      type="DELETE" if event.type == kv_pb2.Event.DELETE else "PUT", value=kv.value.decode(),
                      create_revision=kv.create_revision, mod_revision=kv.mod_revision, version=kv.version)


class Watcher:
    """Watches every key under PREFIX from revision `start`, hopping between members.

    It leaves a member on any error, and on its own every few seconds, resuming at the
    last revision it saw plus one; `events` keeps everything received, duplicates included,
    for the checks to judge.
    """

    def __init__(self, number: int, history: History, channels: Sequence[grpc.aio.Channel],
                 rng: random.Random, start: int = 1, hop_seconds: tuple[float, float] = (4.0, 12.0)) -> None:
        self.number = number
        self.channels = channels
        self.rng = rng
        self.next_revision = start
        self.hop_seconds = hop_seconds
        self.events: list[WatchEvent] = history.watches.setdefault(number, [])
        self.connections = 0
        self.errors: list[str] = []

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            member = self.rng.randrange(len(self.channels))
            self.connections += 1
            call = rpc_pb2_grpc.WatchStub(self.channels[member]).Watch()
            reader = asyncio.ensure_future(self._follow(call))
            hop = asyncio.ensure_future(asyncio.sleep(self.rng.uniform(*self.hop_seconds)))
            halt = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait([reader, hop, halt], return_when=asyncio.FIRST_COMPLETED)
            finally:
                call.cancel()
                for task in (reader, hop, halt):
                    task.cancel()
                await asyncio.gather(reader, hop, halt, return_exceptions=True)
            error = reader.exception() if reader.done() and not reader.cancelled() else None
            if error is not None:
                self.errors.append(describe_error(error))
                await asyncio.sleep(0.2)

    async def _follow(self, call: grpc.aio.StreamStreamCall[rpc_pb2.WatchRequest, rpc_pb2.WatchResponse]) -> None:
        prefix = PREFIX.encode()
        await call.write(rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(
            key=prefix, range_end=prefix_end(prefix), start_revision=self.next_revision)))
        while True:
            answer = await call.read()
            if answer is grpc.aio.EOF:
                raise ConnectionError("watch stream ended")
            if answer.canceled:
                raise ConnectionError(f"watch canceled: {answer.cancel_reason} "
                                      f"(compact revision {answer.compact_revision})")
            for event in answer.events:
                self.events.append(watch_event(event))
                self.next_revision = max(self.next_revision, event.kv.mod_revision + 1)


class StatusPoller:
    """Samples every running member's (term, leader) a few times a second."""

    def __init__(self, cluster: ChaosCluster, history: History, channels: Sequence[grpc.aio.Channel],
                 interval: float = 0.25) -> None:
        self.cluster = cluster
        self.history = history
        self.channels = channels
        self.interval = interval

    async def sample(self, index: int) -> StatusSample | None:
        member = self.cluster.members[index]
        if not member.running or member.paused:
            return None
        try:
            answer = await rpc_pb2_grpc.MaintenanceStub(self.channels[index]).Status(
                rpc_pb2.StatusRequest(), timeout=1.0)
        except grpc.aio.AioRpcError:
            return None
        sample = StatusSample(self.history.now(), index, answer.header.member_id, answer.raftTerm, answer.leader)
        self.history.status.append(sample)
        return sample

    async def sample_all(self) -> list[StatusSample]:
        found = await asyncio.gather(*(self.sample(i) for i in range(len(self.cluster.members))))
        return [s for s in found if s is not None]

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.sample_all()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)

    async def leader(self) -> int | None:
        """The index of the member the most recent samples call leader, if any."""
        samples = await self.sample_all()
        if not samples:
            return None
        newest = max(samples, key=lambda s: (s.term, s.leader != 0))
        ids = {m.member_id: m.index for m in self.cluster.members}
        return ids.get(newest.leader)
