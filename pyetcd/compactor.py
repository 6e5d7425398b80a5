"""Auto compaction, run as etcd's v3compactor runs it, on the leader only.

`--auto-compaction-mode revision --auto-compaction-retention N`: every 5 minutes, compact
to the current revision minus N (etcd's fixed check interval; it does not depend on N).

`--auto-compaction-mode periodic --auto-compaction-retention D`: keep D of history. The
compactor samples the revision every tenth of min(D, 1h); once D has passed it compacts to
the revision sampled D ago, and from then on every min(D, 1h).

A compaction the store already has ("required revision has been compacted") counts as done,
as in etcd; any other failure is retried at the next tick.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from pyetcd import errors

log = logging.getLogger("pyetcd.compactor")

REVISION_CHECK_INTERVAL_S = 300.0
"""etcd's revInterval: how often revision mode looks at the current revision."""
PERIODIC_MAX_INTERVAL_S = 3600.0
"""Periodic mode compacts at least every hour, whatever the retention."""
PERIODIC_SAMPLES_PER_INTERVAL = 10
"""etcd's retryDivisor: revisions are sampled (and failures retried) this often per interval."""

CurrentRevision = Callable[[], int]
Compact = Callable[[int], Awaitable[object]]
IsLeader = Callable[[], bool]
Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


async def _compact_once(compact: Compact, revision: int, what: str) -> bool:
    """Compact to `revision`; True when the store is compacted at least that far."""
    log.info("starting auto-compaction at revision %d (%s)", revision, what)
    try:
        await compact(revision)
    except Exception as err:  # noqa: BLE001 - a failed compaction is retried on the next tick
        if errors.to_etcd_error(err) == errors.ErrGRPCCompacted:
            return True
        log.warning("failed auto-compaction at revision %d: %s", revision, err)
        return False
    log.info("finished auto-compaction at revision %d", revision)
    return True


class RevisionCompactor:
    """Keeps the last `retention` revisions (etcd's v3compactor.Revision)."""

    def __init__(self, retention: int, current_revision: CurrentRevision, compact: Compact, is_leader: IsLeader,
                 *, interval: float = REVISION_CHECK_INTERVAL_S, sleep: Sleep = asyncio.sleep) -> None:
        self.retention = retention
        self.interval = interval
        self._current_revision = current_revision
        self._compact = compact
        self._is_leader = is_leader
        self._sleep = sleep
        self.last_compacted = 0

    async def tick(self) -> None:
        """One check: compact to current - retention unless that is nothing or already done."""
        if not self._is_leader():
            return
        target = self._current_revision() - self.retention
        if target <= 0 or target == self.last_compacted:
            return
        if await _compact_once(self._compact, target, f"retention: {self.retention} revisions"):
            self.last_compacted = target

    async def run(self) -> None:
        while True:
            await self._sleep(self.interval)
            await self.tick()


class PeriodicCompactor:
    """Keeps `period` seconds of history (etcd's v3compactor.Periodic)."""

    def __init__(self, period: float, current_revision: CurrentRevision, compact: Compact, is_leader: IsLeader,
                 *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        self.period = period
        self.compact_interval = min(period, PERIODIC_MAX_INTERVAL_S)
        self.sample_interval = self.compact_interval / PERIODIC_SAMPLES_PER_INTERVAL
        # The oldest sample kept is the revision of `period` ago.
        self.samples_kept = int(period / self.sample_interval) + 1
        self._current_revision = current_revision
        self._compact = compact
        self._is_leader = is_leader
        self._clock = clock
        self._sleep = sleep
        self.revisions: list[int] = []
        self._last_success = clock()
        self._wait = period  # the first compaction waits a whole period, later ones an interval

    def sample(self) -> None:
        self.revisions.append(self._current_revision())
        if len(self.revisions) > self.samples_kept:
            del self.revisions[0]

    async def tick(self) -> None:
        """After one sample interval: compact to the oldest sample once it is due."""
        if not self._is_leader():
            return
        if self._clock() - self._last_success < self._wait:
            return
        self._wait = self.compact_interval
        if await _compact_once(self._compact, self.revisions[0], f"retention: {self.period:g}s"):
            self._last_success = self._clock()

    async def run(self) -> None:
        while True:
            self.sample()
            await self._sleep(self.sample_interval)
            await self.tick()


def new_compactor(mode: str, retention: float, current_revision: CurrentRevision, compact: Compact,
                  is_leader: IsLeader) -> RevisionCompactor | PeriodicCompactor | None:
    """The compactor for --auto-compaction-mode, or None when retention is 0 (disabled)."""
    if retention <= 0:
        return None
    if mode == "revision":
        return RevisionCompactor(int(retention), current_revision, compact, is_leader)
    return PeriodicCompactor(retention, current_revision, compact, is_leader)
