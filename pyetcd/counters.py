"""Counts the server keeps for /metrics (etcd_server_*): plain integers, read when scraped."""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True)
class ServerCounters:
    """etcd's etcdserver counters that no other state already holds."""

    leader_changes: int = 0
    """etcd_server_leader_changes_seen_total: times this member saw a new leader."""
    proposals_failed: int = 0
    """etcd_server_proposals_failed_total: proposals dropped (no leader) or timed out."""
    slow_applies: int = 0
    """etcd_server_slow_apply_total: applies slower than --experimental-warning-apply-duration."""

    cluster_versions: dict[str, int] = field(default_factory=dict)
    """etcd_cluster_version: 1 for the current cluster version (major.minor), 0 for those before it."""

    def set_cluster_version(self, version: str) -> None:
        for known in self.cluster_versions:
            self.cluster_versions[known] = 0
        self.cluster_versions[version] = 1

    def on_leader_change(self, leader_id: int, term: int) -> None:
        if leader_id:
            self.leader_changes += 1


@dataclass(frozen=True, slots=True)
class DiskObservers:
    """Where the storage reports how long its disk work took (etcd_disk_*_duration_seconds)."""

    wal_fsync: Callable[[float], None]
    backend_commit: Callable[[float], None]


def exponential_buckets(start: float, factor: float, count: int) -> tuple[float, ...]:
    """Prometheus' ExponentialBuckets, as etcd declares its disk and network histograms."""
    return tuple(start * factor**i for i in range(count))


class DurationHistogram:
    """Observed durations as cumulative-at-scrape bucket counts, with no lock: one writer thread at a time."""

    __slots__ = ("bounds", "buckets", "count", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.buckets = [0] * (len(bounds) + 1)
        self.count = 0
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.buckets[bisect.bisect_left(self.bounds, seconds)] += 1
        self.count += 1
        self.total += seconds
