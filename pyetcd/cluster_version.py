"""The cluster version: undecided when a cluster starts, then decided by its leader and set through the log.

etcd 3.4's leader (monitorVersions in etcdserver/server.go) asks every member for its server
version, takes the lowest, keeps its major.minor, and proposes it; every member applies it
(RaftCluster.SetVersion) and enables that version's capabilities. Until then `/version` says
`not_decided`. A member that cannot be asked makes the decision unknown: an undecided cluster
then starts at etcd's minimum cluster version (3.0) and is raised once every member answers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from pyetcd import SERVER_VERSION
from pyetcd.logs import log_event
from pyetcd.membership import Member

log = logging.getLogger("pyetcd.server")

MIN_CLUSTER_VERSION = "3.0.0"
"""etcd's version.MinClusterVersion: what an undecided cluster is set to when a member does not answer."""
MONITOR_INTERVAL_S = 4.0
"""etcd's monitorVersionInterval (its peer write timeout less a second)."""
NOT_DECIDED = "not_decided"

Semver = tuple[int, int, int]


def parse(version: str) -> Semver:
    """`3.4.23` -> (3, 4, 23); a pre-release or build suffix is ignored. ValueError if not a version."""
    core = version.split("-", 1)[0].split("+", 1)[0]
    parts = core.split(".")
    if len(parts) != 3:
        raise ValueError(f"{version!r} is not a semantic version")
    major, minor, patch = (int(p) for p in parts)
    return major, minor, patch


def major_minor(version: str) -> str:
    """etcd's version.Cluster: `3.4.0` -> `3.4`, as its log lines and metrics name a cluster version."""
    major, minor, _ = parse(version)
    return f"{major}.{minor}"


def decide(server_versions: Mapping[int, str | None]) -> str | None:
    """etcd's decideClusterVersion, then major.minor: the lowest member's version as `X.Y.0`, or None
    when some member's version is unknown (it did not answer) or cannot be read."""
    lowest: Semver | None = None
    for member_id, version in server_versions.items():
        if version is None:
            return None
        try:
            parsed = parse(version)
        except ValueError:
            log.error("cannot understand the version of member %x (%s)", member_id, version)
            return None
        if parse(SERVER_VERSION) < parsed:
            log.warning("the local etcd version %s is not up-to-date", SERVER_VERSION)
            log.warning("member %x has a higher version %s", member_id, version)
        lowest = parsed if lowest is None else min(lowest, parsed)
    return None if lowest is None else f"{lowest[0]}.{lowest[1]}.0"


def next_version(current: str | None, decided: str | None) -> str | None:
    """What the leader proposes: the decided version (or the minimum) for an undecided cluster,
    a higher decided version for a decided one, else nothing."""
    if current is None:
        return decided or MIN_CLUSTER_VERSION
    if decided is not None and parse(current) < parse(decided):
        return decided
    return None


class Capabilities:
    """etcd's api.UpdateCapability: which cluster version the enabled capabilities follow (they only go up)."""

    def __init__(self) -> None:
        self.version: str | None = None

    def update(self, version: str | None) -> bool:
        """Follow `version` if it is higher than the one followed; True when that changed."""
        if version is None or (self.version is not None and parse(version) <= parse(self.version)):
            return False
        self.version = version
        return True


class ClusterVersionMonitor:
    """The leader's loop that decides the cluster version and proposes it (etcd's monitorVersions).

    It checks when this member becomes leader and every MONITOR_INTERVAL_S after; followers skip.
    """

    def __init__(self, *, member_id: int, is_leader: Callable[[], bool], members: Callable[[], list[Member]],
                 current: Callable[[], str | None], remote_version: Callable[[Member], Awaitable[str | None]],
                 propose: Callable[[str], Awaitable[None]]) -> None:
        self._member_id = member_id
        self._is_leader = is_leader
        self._members = members
        self._current = current
        self._remote_version = remote_version
        self._propose = propose
        self._wake = asyncio.Event()

    def on_leader_change(self, leader_id: int, term: int) -> None:
        """A leader listener: check at once when this member becomes leader."""
        if leader_id == self._member_id:
            self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(MONITOR_INTERVAL_S):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            if self._is_leader():
                await self.check()

    async def check(self) -> None:
        """Ask every member its version and propose the cluster version they allow, if it changes."""
        versions = await self.server_versions()
        current = self._current()
        target = next_version(current, decide(versions))
        if target is None:
            return
        if current is None:
            log_event(log, logging.INFO, "setting up the initial cluster version to %s", major_minor(target),
                      zap="setting up initial cluster version", cluster_version=major_minor(target))
        else:
            log_event(log, logging.INFO, "updating the cluster version from %s to %s", major_minor(current),
                      major_minor(target), zap="updating cluster version", **{"from": major_minor(current)},
                      to=major_minor(target))
        try:
            await self._propose(target)
        except Exception as err:  # noqa: BLE001 - the next check tries again, as etcd's loop does
            log_event(log, logging.ERROR, "error updating cluster version (%s)", err,
                      zap="failed to update cluster version", error=str(err))
            return
        log_event(log, logging.INFO, "cluster version is updated", zap="cluster version is updated", only="zap",
                  cluster_version=major_minor(target))

    async def server_versions(self) -> dict[int, str | None]:
        """Each member's server version (etcd's getVersions); None for a member that did not answer."""
        members = self._members()
        remote = [m for m in members if m.id != self._member_id]
        answers = await asyncio.gather(*(self._remote_version(m) for m in remote))
        versions: dict[int, str | None] = {m.id: v for m, v in zip(remote, answers, strict=True)}
        if any(m.id == self._member_id for m in members):
            versions[self._member_id] = SERVER_VERSION
        return versions
