"""One chaos run: start a cluster, load it while the nemesis strikes, heal, read back, check.

    report = run_chaos(RunConfig(duration=60, seed=7))
    print(report.summary())

The run directory keeps the members' logs and data, history.jsonl (every client
operation), faults.jsonl, status.jsonl, watches.jsonl and report.txt, so a failed
check can be studied after the processes are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.chaos import checks
from tests.chaos.checks import CheckResult, ReadBack
from tests.chaos.clients import (
    PREFIX,
    Keyspace,
    RegisterWorker,
    StatusPoller,
    Watcher,
    WorkloadConfig,
    prefix_end,
    watch_event,
)
from tests.chaos.cluster import ChaosCluster, wait_serving
from tests.chaos.history import History, OpRecord, WatchEvent
from tests.chaos.linearizability import check_history
from tests.chaos.nemesis import Nemesis, NemesisConfig
from tests.chaos.proxy import ProxyStats

BARRIER_KEY = PREFIX + "~barrier"
RECOVERY_SECONDS = 60.0
"""How long a healed cluster may take to serve every member again."""
FINAL_READER = 1000
"""The process number of the reads that close every register's history after healing."""


@dataclass(frozen=True)
class RunConfig:
    duration: float = 60.0
    seed: int = 1
    members: int = 3
    binary: str = "pyetcd"
    watchers: int = 2
    workdir: Path | None = None
    heartbeat_ms: int = 100
    election_ms: int = 1000
    snapshot_count: int | None = None
    member_flags: tuple[str, ...] = ()
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    nemesis: NemesisConfig = field(default_factory=NemesisConfig)
    max_search_steps: int = 2_000_000


@dataclass
class RunReport:
    config: RunConfig
    workdir: Path
    history: History
    checks: list[CheckResult]
    elapsed: float
    check_seconds: float
    proxy: ProxyStats

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def figures(self) -> dict[str, int]:
        ops = self.history.ops
        return {
            "operations": len(ops),
            "ok": sum(1 for o in ops if o.status == "ok"),
            "failed reads": sum(1 for o in ops if o.status == "fail"),
            "unknown outcome": sum(1 for o in ops if o.status == "info"),
            "faults": len(self.history.faults),
            "keys": len({o.key for o in ops}),
            "watch events": sum(len(e) for e in self.history.watches.values()),
            "status samples": len(self.history.status),
            "peer connections": self.proxy.connections,
            "peer connections of unknown opener": self.proxy.unidentified,
        }

    def summary(self) -> str:
        by_kind = Counter((o.f, o.status) for o in self.history.ops)
        lines = [f"chaos run: {self.config.binary}, seed {self.config.seed}, {self.config.members} members, "
                 f"{self.config.duration:.0f}s of load, {self.elapsed:.0f}s in all "
                 f"(checks {self.check_seconds:.1f}s); run directory {self.workdir}",
                 "  " + ", ".join(f"{k}: {v}" for k, v in self.figures().items()),
                 "  by operation: " + ", ".join(f"{f}/{s}={n}" for (f, s), n in sorted(by_kind.items())),
                 "  faults: " + ", ".join(f"{k}={n}" for k, n in
                                          sorted(Counter(f.kind for f in self.history.faults).items())),
                 *(f"    {f.start:7.1f}s..{f.end:7.1f}s {f.detail}" for f in self.history.faults),
                 *(c.line() for c in self.checks),
                 f"VERDICT: {'PASS' if self.ok else 'FAIL'}"]
        return "\n".join(lines)


def run_chaos(config: RunConfig) -> RunReport:
    """Run one chaos test to completion; every process it starts is stopped before it returns."""
    return asyncio.run(ChaosRun(config).run())


class ChaosRun:
    """One run's cluster, clients, nemesis and history; `run()` may be called once."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.workdir = config.workdir or Path(tempfile.mkdtemp(prefix="pyetcd-chaos-"))
        extra = [f"--heartbeat-interval={config.heartbeat_ms}", f"--election-timeout={config.election_ms}"]
        if config.snapshot_count is not None:
            extra.append(f"--snapshot-count={config.snapshot_count}")
        extra.extend(config.member_flags)
        self.cluster = ChaosCluster(self.workdir, config.members, extra_args=extra, binary=config.binary)
        self.history = History()
        self.rng = random.Random(config.seed)
        self.channels: list[grpc.aio.Channel] = []

    async def run(self) -> RunReport:
        began = time.monotonic()
        try:
            self.cluster.start()
            self.channels = [grpc.aio.insecure_channel(m.endpoint) for m in self.cluster.members]
            await wait_serving(self.cluster, self.channels)
            self.history = History()
            results, check_seconds = await self._load_and_check()
        finally:
            for channel in self.channels:
                with contextlib.suppress(Exception):
                    await channel.close()
            self.cluster.stop()
        report = RunReport(self.config, self.workdir, self.history, results, time.monotonic() - began,
                           check_seconds, self.cluster.proxy.stats())
        self.history.dump(self.workdir)
        (self.workdir / "report.txt").write_text(report.summary() + "\n")
        return report

    async def _load_and_check(self) -> tuple[list[CheckResult], float]:
        config = self.config
        poller = StatusPoller(self.cluster, self.history, self.channels)
        keyspace = Keyspace(config.workload.registers, config.workload.ops_per_register)
        workers = [RegisterWorker(p, self.history, self.channels, keyspace, config.workload,
                                  random.Random(self.rng.random())) for p in range(config.workload.workers)]
        watchers = [Watcher(w, self.history, self.channels, random.Random(self.rng.random()))
                    for w in range(config.watchers)]
        nemesis_config = dataclasses.replace(config.nemesis, election_seconds=config.election_ms / 1000)
        nemesis = Nemesis(self.cluster, self.history, poller, random.Random(self.rng.random()), nemesis_config)
        load_done, watch_done = asyncio.Event(), asyncio.Event()
        background = [asyncio.ensure_future(poller.run(watch_done)),
                      *(asyncio.ensure_future(w.run(watch_done)) for w in watchers)]
        load = [asyncio.ensure_future(nemesis.run(load_done)),
                *(asyncio.ensure_future(w.run(load_done)) for w in workers)]
        try:
            await asyncio.sleep(config.duration)
            load_done.set()
            await asyncio.gather(*load)
            nemesis.heal()
            try:
                await wait_serving(self.cluster, self.channels, timeout=RECOVERY_SECONDS)
                await self._final_reads(workers[0], keyspace.keys)
                barrier = await self._barrier()
            except (TimeoutError, RuntimeError) as err:
                # A cluster that stays down once every fault is healed is a finding, not a crash.
                started = time.monotonic()
                verdict = check_history(self.history.operations(), max_steps_per_key=config.max_search_steps)
                return [CheckResult("cluster serves again after healing", False, str(err)),
                        checks.linearizability(verdict)], time.monotonic() - started
            await self._caught_up(barrier, watchers)
        finally:
            load_done.set()
            watch_done.set()
            await asyncio.gather(*load, *background, return_exceptions=True)
        started = time.monotonic()
        results = await self._checks(barrier, watchers)
        return results, time.monotonic() - started

    async def _final_reads(self, reader: RegisterWorker, keys: Sequence[str]) -> None:
        """One linearizable read per register after healing: the end state joins the history."""
        for key in keys:
            for attempt in range(5):
                reader.member = attempt % len(self.channels)
                if not await reader.get(key, record_as=FINAL_READER):
                    break

    async def _barrier(self) -> int:
        """A last write every member must reach; its revision is where the stores are compared."""
        for attempt in range(int(RECOVERY_SECONDS / 0.5)):
            kv = rpc_pb2_grpc.KVStub(self.channels[attempt % len(self.channels)])
            try:
                answer = await kv.Put(rpc_pb2.PutRequest(key=BARRIER_KEY.encode(), value=b"end"), timeout=5)
                return int(answer.header.revision)
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.5)
        raise RuntimeError("the healed cluster never accepted the barrier write")

    async def _caught_up(self, revision: int, watchers: Sequence[Watcher], timeout: float = 60.0) -> None:
        """Until every member has applied `revision` and every watcher has seen it."""
        deadline = time.monotonic() + timeout
        for channel in self.channels:
            kv = rpc_pb2_grpc.KVStub(channel)
            while time.monotonic() < deadline:
                with contextlib.suppress(grpc.aio.AioRpcError):
                    answer = await kv.Range(rpc_pb2.RangeRequest(key=BARRIER_KEY.encode(), serializable=True),
                                            timeout=2)
                    if answer.header.revision >= revision:
                        break
                await asyncio.sleep(0.2)
        while time.monotonic() < deadline and any(w.next_revision <= revision for w in watchers):
            await asyncio.sleep(0.2)

    async def _checks(self, barrier: int, watchers: Sequence[Watcher]) -> list[CheckResult]:
        members = range(len(self.cluster.members))
        histories = {m: await member_events(self.channels[m], barrier) for m in members}
        hashes = {}
        for m in members:
            with contextlib.suppress(grpc.aio.AioRpcError):  # a member that cannot answer fails the check
                answer = await rpc_pb2_grpc.MaintenanceStub(self.channels[m]).HashKV(
                    rpc_pb2.HashKVRequest(revision=barrier), timeout=10)
                hashes[m] = (answer.hash, answer.compact_revision, answer.header.revision)
        reads = await read_back_writes(self.channels, [o for o in self.history.ops if checks.acknowledged_writes(o)])
        verdict = check_history(self.history.operations(), max_steps_per_key=self.config.max_search_steps)
        return [
            checks.linearizability(verdict),
            checks.writes_on_every_member(self.history.ops, reads, len(self.channels)),
            checks.hashes_agree(hashes, barrier, len(self.channels)),
            checks.member_histories_agree(histories, 2, barrier),
            checks.watchers_saw_everything({w.number: w.events for w in watchers}, histories[0], 1,
                                           {w.number: w.connections - 1 for w in watchers}),
            checks.one_leader_per_term(self.history.status),
        ]


async def member_events(channel: grpc.aio.Channel, last: int, timeout: float = 60.0) -> list[WatchEvent]:
    """A member's whole event history under PREFIX, from revision 1 to `last`, from its own store."""
    call = rpc_pb2_grpc.WatchStub(channel).Watch()
    events: list[WatchEvent] = []

    async def follow() -> None:
        prefix = PREFIX.encode()
        await call.write(rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(
            key=prefix, range_end=prefix_end(prefix), start_revision=1)))
        while not events or events[-1].revision < last:
            answer = await call.read()
            if answer is grpc.aio.EOF or answer.canceled:
                raise ConnectionError(f"watch ended: {answer}")
            events.extend(watch_event(e) for e in answer.events)

    try:
        await asyncio.wait_for(follow(), timeout)
    except (TimeoutError, ConnectionError, grpc.aio.AioRpcError):
        pass  # what arrived is compared with the other members, and the gap shows there
    finally:
        call.cancel()
    return [e for e in events if e.revision <= last]


async def read_back_writes(channels: Sequence[grpc.aio.Channel], writes: Sequence[OpRecord],
                           concurrency: int = 16) -> list[ReadBack]:
    """Each member's serializable read of each acknowledged write's key at the write's revision."""
    limit = asyncio.Semaphore(concurrency)

    async def one(member: int, op: OpRecord) -> ReadBack:
        async with limit:
            try:
                answer = await rpc_pb2_grpc.KVStub(channels[member]).Range(
                    rpc_pb2.RangeRequest(key=op.key.encode(), revision=op.revision, serializable=True), timeout=10)
            except grpc.aio.AioRpcError as err:
                return ReadBack(member, op.index, None, 0, f"{err.code().name}: {err.details()}")
        if not answer.kvs:
            return ReadBack(member, op.index, None, 0)
        return ReadBack(member, op.index, answer.kvs[0].value.decode(), answer.kvs[0].mod_revision)

    return list(await asyncio.gather(*(one(m, op) for m in range(len(channels)) for op in writes)))
