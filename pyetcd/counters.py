"""Counts the server keeps for /metrics (etcd_server_*, etcd_network_peer_*): plain numbers, read when scraped."""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field

from raft.peer_traffic import PeerTraffic


@dataclass(slots=True)
class ServerCounters:
    """etcd's etcdserver counters that no other state already holds."""

    leader_changes: int = 0
    """etcd_server_leader_changes_seen_total: times this member saw a new leader."""
    proposals_failed: int = 0
    """etcd_server_proposals_failed_total: proposals dropped (no leader) or timed out."""
    slow_applies: int = 0
    """etcd_server_slow_apply_total: applies slower than --experimental-warning-apply-duration."""

    heartbeat_send_failures: int = 0
    """etcd_server_heartbeat_send_failures_total: heartbeats this leader sent later than twice the interval."""
    peer_traffic: PeerTraffic = field(default_factory=PeerTraffic)
    """etcd_network_peer_*_total: what the peer transport counted, per peer."""
    peer_round_trip: dict[int, DurationHistogram] = field(default_factory=dict)
    """etcd_network_peer_round_trip_time_seconds, per peer."""
    cluster_versions: dict[str, int] = field(default_factory=dict)
    """etcd_cluster_version: 1 for the current cluster version (major.minor), 0 for those before it."""

    def set_cluster_version(self, version: str) -> None:
        for known in self.cluster_versions:
            self.cluster_versions[known] = 0
        self.cluster_versions[version] = 1

    def on_leader_change(self, leader_id: int, term: int) -> None:
        if leader_id:
            self.leader_changes += 1

    def observe_round_trip(self, peer_id: int, seconds: float) -> None:
        histogram = self.peer_round_trip.get(peer_id)
        if histogram is None:
            histogram = self.peer_round_trip[peer_id] = DurationHistogram(PEER_ROUND_TRIP_BUCKETS)
        histogram.observe(seconds)


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


PEER_ROUND_TRIP_BUCKETS = exponential_buckets(0.0001, 2, 16)
"""etcd's buckets for etcd_network_peer_round_trip_time_seconds: 0.1 ms up to 3.2768 s."""
