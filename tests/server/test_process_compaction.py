"""Auto compaction as etcd schedules it.

Periodic mode with a retention of seconds is quick enough to watch on real processes (etcd
and pyetcd). Revision mode checks every 5 minutes, as etcd's does, so its schedule is shown
in-process with a fake clock; so are periodic mode's hourly cadence and the leader-only rule.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from pyetcd import errors
from pyetcd.compactor import REVISION_CHECK_INTERVAL_S, PeriodicCompactor, RevisionCompactor
from pyetcd.config import parse_compaction_retention
from tests.helpers.servers import StartServer

COMPACTED = "etcdserver: mvcc: required revision has been compacted"
BINARIES = [pytest.param("etcd", id="etcd"),
            pytest.param("pyetcd", id="pyetcd")]


class FakeStore:
    """The revision a compactor reads and the compactions it asks for, on a fake clock."""

    def __init__(self) -> None:
        self.now = 0.0
        self.revision = 1
        self.compacted = 0
        self.requests: list[int] = []
        self.leader = True

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds

    async def compact(self, revision: int) -> None:
        self.requests.append(revision)
        if revision <= self.compacted:
            raise errors.ErrGRPCCompacted
        self.compacted = revision

    def is_leader(self) -> bool:
        return self.leader


# --- revision mode -----------------------------------------------------------------------

async def test_revision_mode_keeps_the_last_n_revisions_checking_every_5_minutes() -> None:
    store = FakeStore()
    compactor = RevisionCompactor(10, lambda: store.revision, store.compact, store.is_leader, sleep=store.sleep)
    assert compactor.interval == REVISION_CHECK_INTERVAL_S == 300.0

    async def checks(count: int, writes_between: int) -> None:
        for _ in range(count):
            store.revision += writes_between
            await store.sleep(compactor.interval)
            await compactor.tick()

    await checks(1, writes_between=5)  # revision 6: nothing old enough yet
    assert store.requests == []
    await checks(2, writes_between=5)  # revisions 11 and 16
    assert store.requests == [1, 6]
    await checks(2, writes_between=0)  # no writes: the same target is not asked for again
    assert store.requests == [1, 6]


async def test_revision_mode_compacts_only_on_the_leader() -> None:
    store = FakeStore()
    store.revision, store.leader = 100, False
    compactor = RevisionCompactor(10, lambda: store.revision, store.compact, store.is_leader, sleep=store.sleep)
    await compactor.tick()
    assert store.requests == []
    store.leader = True
    await compactor.tick()
    assert store.requests == [90]


# --- periodic mode -----------------------------------------------------------------------

def periodic(store: FakeStore, period: float) -> tuple[PeriodicCompactor, Callable[[int], Awaitable[None]]]:
    """A periodic compactor on the fake clock, and a way to run its loop for some samples.

    One write follows every sample, so sample k (taken at k sample intervals) saw revision 1 + k.
    """
    compactor = PeriodicCompactor(period, lambda: store.revision, store.compact, store.is_leader,
                                  clock=store.clock, sleep=store.sleep)

    async def samples(count: int) -> None:
        for _ in range(count):
            compactor.sample()
            store.revision += 1
            await store.sleep(compactor.sample_interval)
            await compactor.tick()

    return compactor, samples


async def test_periodic_mode_waits_a_whole_retention_then_compacts_hourly() -> None:
    store = FakeStore()
    compactor, samples = periodic(store, 3 * 3600)
    assert (compactor.compact_interval, compactor.sample_interval) == (3600, 360)
    await samples(29)
    assert store.requests == []
    await samples(1)  # 3 hours in: back to the first sample
    assert store.requests == [1]
    await samples(9)
    assert store.requests == [1]
    await samples(1)  # an hour later: the oldest sample kept, from 3 hours (and one sample) before
    assert store.requests == [1, 10]


async def test_periodic_mode_under_an_hour_compacts_every_retention() -> None:
    store = FakeStore()
    compactor, samples = periodic(store, 600)
    assert compactor.sample_interval == 60
    await samples(30)
    assert store.requests == [1, 10, 20]


async def test_periodic_mode_pauses_on_a_follower_and_catches_up_as_leader() -> None:
    store = FakeStore()
    store.leader = False
    _, samples = periodic(store, 600)
    await samples(25)
    assert store.requests == []
    store.leader = True
    await samples(1)  # overdue: compacts at once to the oldest of the 11 samples kept (sample 15)
    assert store.requests == [16]


def test_retention_is_read_as_etcd_reads_it() -> None:
    assert parse_compaction_retention("periodic", "1") == 3600.0  # a plain number is hours
    assert parse_compaction_retention("periodic", "30m") == 1800.0
    assert parse_compaction_retention("periodic", "1h30m") == 5400.0
    assert parse_compaction_retention("revision", "1000") == 1000.0
    assert parse_compaction_retention("periodic", "0") == 0.0


# --- on real processes -------------------------------------------------------------------

@pytest.mark.parametrize("binary", BINARIES)
def test_periodic_compaction_with_a_seconds_retention_compacts_old_history(
        binary: str, start_server: StartServer, tmp_path: Path) -> None:
    server = start_server(binary, name="autocompact",
                          extra_args=["--auto-compaction-mode=periodic", "--auto-compaction-retention=2s"])
    first = json.loads(server.etcdctl("put", "/auto/k", "1", "-w", "json").stdout)["header"]["revision"]
    for value in ("2", "3"):
        assert server.etcdctl("put", "/auto/k", value).returncode == 0
    deadline = time.monotonic() + 30
    while True:
        old = server.etcdctl("get", "/auto/k", f"--rev={first}")
        if old.returncode != 0:
            break
        assert time.monotonic() < deadline, "no automatic compaction happened"
        time.sleep(0.5)
    assert f"Error: {COMPACTED}" in old.stderr
    assert server.etcdctl("get", "/auto/k", "--print-value-only").stdout.splitlines() == ["3"]


def test_a_physical_compaction_answers_once_its_batches_are_deleted(start_server: StartServer) -> None:
    """With 2 revisions per batch a compaction of 40 takes 20 batches; `--physical` waits for all of them.
    Once every key is deleted HashKV counts whatever is still stored below the compaction (as etcd's
    does), so etcd's hash and pyetcd's agree only if both answered after the last batch."""
    hashes = {}
    for binary in ("etcd", "pyetcd"):
        server = start_server(binary, name=f"physical-{binary}", extra_args=["--experimental-compaction-batch-limit=2"])
        for value in range(40):
            assert server.etcdctl("put", "k", str(value)).returncode == 0
        deleted = json.loads(server.etcdctl("del", "k", "-w", "json").stdout)["header"]["revision"]
        compacted = server.etcdctl("compact", str(deleted), "--physical")
        assert compacted.stdout.strip() == f"compacted revision {deleted}", compacted.stderr
        hashes[binary] = json.loads(server.etcdctl("endpoint", "hashkv", "-w", "json").stdout)[0]["HashKV"]["hash"]
        assert f"Error: {COMPACTED}" in server.etcdctl("get", "k", f"--rev={deleted - 1}").stderr
    assert hashes["pyetcd"] == hashes["etcd"]
