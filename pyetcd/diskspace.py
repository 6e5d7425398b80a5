"""The disk-space guard: raise NOSPACE before a full disk can fail a write, and stop if one fails anyway.

etcd raises NOSPACE only for its quota and dies when the disk itself is full. A member here
also watches the free space of the filesystems under its Raft log and its store (os.statvfs).
Once it drops below a reserve, the member proposes its own NOSPACE alarm, exactly as the
quota path does: from then on writes are refused with "database space exceeded" while reads,
deletes, compactions and `alarm disarm` go on, and the reserve absorbs what was already in
flight. The alarm stays until an operator frees space and disarms it; disarmed while space is
still short, it is raised again.

If a Raft log write fails anyway (ENOSPC from a burst larger than the reserve, EIO), the
Raft node has already stopped without acknowledging the entries it could not save; the guard
then stops the whole member with the reason, as etcd exits on a failed WAL write. On restart
the log drops the torn tail, so every acknowledged write is still there.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from etcdpb.etcdserverpb import rpc_pb2
from pyetcd.apply import Applier
from pyetcd.config import ServerConfig
from raft.node import RaftNode

log = logging.getLogger("pyetcd.diskspace")

CHECK_INTERVAL_S = 0.1
"""How often free space is looked at; a statvfs call costs microseconds."""
RETRY_AFTER_S = 1.0
"""Wait this long after a failed alarm proposal (no leader yet, say) before trying again."""
SLACK_BYTES = 1 << 20
"""Room for the alarm entry itself, deletes, compactions and the checkpoint of a new log segment."""

FreeBytes = Callable[[str], int]


def free_bytes(path: str) -> int:
    """Bytes an unprivileged writer may still use on the filesystem holding `path`."""
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def reserve_bytes(max_request_bytes: int) -> int:
    """Free space kept back: a largest request landing in both the Raft log and the store, plus slack."""
    return 2 * max_request_bytes + SLACK_BYTES


class GuardedMember(Protocol):
    """What the guard needs from the server it watches over."""

    config: ServerConfig
    member_id: int
    node: RaftNode
    applier: Applier

    def fail(self, reason: str) -> None: ...

    async def alarm(self, req: Any) -> Any: ...


class DiskSpaceGuard:
    """Watches free space under `paths` and the Raft node's health; acts through the callbacks."""

    def __init__(self, paths: Sequence[str], reserve: int, *,
                 alarm_raised: Callable[[], bool],
                 raise_alarm: Callable[[], Awaitable[object]],
                 raft_failure: Callable[[], BaseException | None],
                 fail_member: Callable[[str], None],
                 measure: FreeBytes = free_bytes,
                 interval_s: float = CHECK_INTERVAL_S) -> None:
        self.paths = list(dict.fromkeys(paths))
        self.reserve = reserve
        self._alarm_raised = alarm_raised
        self._raise_alarm = raise_alarm
        self._raft_failure = raft_failure
        self._fail_member = fail_member
        self._measure = measure
        self.interval_s = interval_s
        self.low = False
        self._raising: asyncio.Task[None] | None = None

    @classmethod
    def for_member(cls, member: GuardedMember) -> DiskSpaceGuard:
        """The guard for one running member: its log and store directories, its own alarm."""
        config = member.config
        request = rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.ACTIVATE, memberID=member.member_id,
                                       alarm=rpc_pb2.NOSPACE)
        return cls([config.raft_log_dir, config.store_dir], reserve_bytes(config.max_request_bytes),
                   alarm_raised=lambda: (member.member_id, rpc_pb2.NOSPACE) in member.applier.alarms,
                   raise_alarm=lambda: member.alarm(request),
                   raft_failure=lambda: member.node.fatal_error, fail_member=member.fail)

    async def run(self) -> None:
        """Check until the member stops; returns once it has asked the member to stop."""
        try:
            while not self.check_raft():
                self.check_space()
                await asyncio.sleep(self.interval_s)
        finally:
            if self._raising is not None:
                self._raising.cancel()

    def check_raft(self) -> bool:
        """Stop the member if its Raft node died (a log write failed); True once it has."""
        err = self._raft_failure()
        if err is None:
            return False
        reason = f"failed to save raft hard state and entries: {err}"
        log.critical("%s; stopping this member (free space, then restart it)", reason)
        self._fail_member(reason)
        return True

    def check_space(self) -> None:
        """Propose this member's NOSPACE alarm while free space is under the reserve and it is not raised."""
        path, free = min(((p, self._measure(p)) for p in self.paths), key=lambda found: found[1])
        if free >= self.reserve:
            if self.low:
                log.info("%s has %d bytes free again (reserve %d)", path, free, self.reserve)
            self.low = False
            return
        if not self.low:
            log.warning("%s has %d bytes free, under the %d-byte reserve: writes are refused (NOSPACE) "
                        "until space is freed and the alarm disarmed", path, free, self.reserve)
        self.low = True
        if self._alarm_raised() or (self._raising is not None and not self._raising.done()):
            return
        log.warning("raising the NOSPACE alarm")
        self._raising = asyncio.create_task(self._propose_alarm(), name="raise-nospace")

    async def _propose_alarm(self) -> None:
        try:
            await self._raise_alarm()
        except Exception as err:  # noqa: BLE001 - no leader, a timeout: try again later
            log.warning("could not raise the NOSPACE alarm yet: %s", err)
            await asyncio.sleep(RETRY_AFTER_S)


__all__ = ["DiskSpaceGuard", "GuardedMember", "free_bytes", "reserve_bytes"]
