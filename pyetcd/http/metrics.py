"""/metrics: etcd 3.4's metric names, types, help and labels, in Prometheus' text format.

Nothing here runs on the request path. The server, store and gRPC handlers keep plain counts
(pyetcd/counters.py, pyetcd/api/stats.py, storage's MvccCounters); this collector turns them
into metric families only when Prometheus scrapes. One registry per member: no global state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from pyetcd.api.stats import GrpcStats
from pyetcd.counters import DiskObservers, DurationHistogram, ServerCounters, exponential_buckets
from storage.mvcc.kvstore_txn import MvccCounters

DISK_BUCKETS = exponential_buckets(0.001, 2, 14)
"""etcd's buckets for etcd_disk_wal_fsync_duration_seconds and etcd_disk_backend_commit_duration_seconds."""


@dataclass(frozen=True, slots=True)
class MemberView:
    """What the collector reads of a member when scraped."""

    member_id: Callable[[], int]
    server_version: str
    leader_id: Callable[[], int]
    committed_index: Callable[[], int]
    applied_index: Callable[[], int]
    pending_proposals: Callable[[], int]
    quota_backend_bytes: Callable[[], int]
    db_size: Callable[[], int]
    db_size_in_use: Callable[[], int]
    live_keys: Callable[[], int]
    watchers: Callable[[], int]
    counters: ServerCounters
    mvcc: Callable[[], MvccCounters]
    auth_revision: Callable[[], int]


def histogram(name: str, documentation: str, data: DurationHistogram,
              labels: dict[str, str] | None = None) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=list(labels or {}))
    add_histogram(family, data, labels or {})
    return family


def add_histogram(family: HistogramMetricFamily, data: DurationHistogram, labels: dict[str, str]) -> None:
    cumulative, buckets = 0, []
    for bound, count in zip((*data.bounds, float("inf")), data.buckets, strict=True):
        cumulative += count
        buckets.append((_bound_text(bound), cumulative))
    family.add_metric(list(labels.values()), buckets, data.total)


def _bound_text(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


class EtcdCollector(Collector):
    """etcd_server_*, etcd_cluster_version, etcd_mvcc_*, etcd_debugging_mvcc_*, etcd_disk_*, etcd_network_client_*,
    etcd_network_peer_* and grpc_server_*."""

    def __init__(self, member: MemberView, grpc_stats: GrpcStats, wal_fsync: DurationHistogram,
                 backend_commit: DurationHistogram) -> None:
        self._member = member
        self._grpc = grpc_stats
        self._wal_fsync = wal_fsync
        self._backend_commit = backend_commit

    def collect(self) -> Iterator[Metric]:
        yield from self._server()
        yield from self._mvcc()
        yield histogram("etcd_disk_wal_fsync_duration_seconds",
                        "The latency distributions of fsync called by WAL.", self._wal_fsync)
        yield histogram("etcd_disk_backend_commit_duration_seconds",
                        "The latency distributions of commit called by backend.", self._backend_commit)
        yield CounterMetricFamily("etcd_network_client_grpc_received_bytes",
                                  "The total number of bytes received from grpc clients.",
                                  value=self._grpc.received_bytes)
        yield CounterMetricFamily("etcd_network_client_grpc_sent_bytes",
                                  "The total number of bytes sent to grpc clients.", value=self._grpc.sent_bytes)
        yield from self._grpc_server()
        yield from self._peers()

    def _server(self) -> Iterable[Metric]:
        m, counters = self._member, self._member.counters
        leader, me = m.leader_id(), m.member_id()
        yield GaugeMetricFamily("etcd_server_has_leader",
                                "Whether or not a leader exists. 1 is existence, 0 is not.", value=int(leader != 0))
        yield GaugeMetricFamily("etcd_server_is_leader",
                                "Whether or not this member is a leader. 1 if is, 0 otherwise.",
                                value=int(leader != 0 and leader == me))
        yield CounterMetricFamily("etcd_server_leader_changes_seen", "The number of leader changes seen.",
                                  value=counters.leader_changes)
        yield GaugeMetricFamily("etcd_server_proposals_committed_total",
                                "The total number of consensus proposals committed.", value=m.committed_index())
        yield GaugeMetricFamily("etcd_server_proposals_applied_total",
                                "The total number of consensus proposals applied.", value=m.applied_index())
        yield GaugeMetricFamily("etcd_server_proposals_pending",
                                "The current number of pending proposals to commit.", value=m.pending_proposals())
        yield CounterMetricFamily("etcd_server_proposals_failed", "The total number of failed proposals seen.",
                                  value=counters.proposals_failed)
        server_id = GaugeMetricFamily(
            "etcd_server_id", "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
            labels=["server_id"])
        server_id.add_metric([f"{me:x}"], 1)
        yield server_id
        version = GaugeMetricFamily(
            "etcd_server_version", "Which version is running. 1 for 'server_version' label with current version.",
            labels=["server_version"])
        version.add_metric([m.server_version], 1)
        yield version
        yield GaugeMetricFamily("etcd_server_quota_backend_bytes", "Current backend storage quota size in bytes.",
                                value=m.quota_backend_bytes())
        if counters.cluster_versions:
            cluster_version = GaugeMetricFamily(
                "etcd_cluster_version",
                "Which version is running. 1 for 'cluster_version' label with current cluster version",
                labels=["cluster_version"])
            for name, value in sorted(counters.cluster_versions.items()):
                cluster_version.add_metric([name], value)
            yield cluster_version
        yield CounterMetricFamily(
            "etcd_server_slow_apply",
            "The total number of slow apply requests (likely overloaded from slow disk).",
            value=counters.slow_applies)
        yield CounterMetricFamily(
            "etcd_server_heartbeat_send_failures",
            "The total number of leader heartbeat send failures (likely overloaded from slow disk).",
            value=counters.heartbeat_send_failures)

    def _peers(self) -> Iterable[Metric]:
        """etcd's rafthttp families; like its vectors, a family appears once some peer has a sample."""
        traffic = self._member.counters.peer_traffic
        for name, documentation, label, counts in (
                ("etcd_network_peer_sent_bytes", "The total number of bytes sent to peers.", "To",
                 traffic.sent_bytes),
                ("etcd_network_peer_received_bytes", "The total number of bytes received from peers.", "From",
                 traffic.received_bytes),
                ("etcd_network_peer_sent_failures", "The total number of send failures from peers.", "To",
                 traffic.sent_failures),
                ("etcd_network_peer_received_failures", "The total number of receive failures from peers.", "From",
                 traffic.received_failures)):
            if counts:
                family = CounterMetricFamily(name, documentation, labels=[label])
                for peer_id, count in sorted(counts.items()):
                    family.add_metric([f"{peer_id:x}"], count)
                yield family
        round_trips = self._member.counters.peer_round_trip
        if round_trips:
            round_trip = HistogramMetricFamily("etcd_network_peer_round_trip_time_seconds",
                                               "Round-Trip-Time histogram between peers", labels=["To"])
            for peer_id, data in sorted(round_trips.items()):
                add_histogram(round_trip, data, {"To": f"{peer_id:x}"})
            yield round_trip

    def _mvcc(self) -> Iterable[Metric]:
        m = self._member
        mvcc = m.mvcc()
        yield GaugeMetricFamily("etcd_mvcc_db_total_size_in_bytes",
                                "Total size of the underlying database physically allocated in bytes.",
                                value=m.db_size())
        yield GaugeMetricFamily("etcd_mvcc_db_total_size_in_use_in_bytes",
                                "Total size of the underlying database logically in use in bytes.",
                                value=m.db_size_in_use())
        yield CounterMetricFamily("etcd_mvcc_put", "Total number of puts seen by this member.", value=mvcc.puts)
        yield CounterMetricFamily("etcd_mvcc_delete", "Total number of deletes seen by this member.",
                                  value=mvcc.deletes)
        yield CounterMetricFamily("etcd_mvcc_range", "Total number of ranges seen by this member.",
                                  value=mvcc.ranges)
        yield CounterMetricFamily("etcd_mvcc_txn", "Total number of txns seen by this member.", value=mvcc.txns)
        yield GaugeMetricFamily("etcd_debugging_mvcc_keys_total", "Total number of keys.", value=m.live_keys())
        yield GaugeMetricFamily("etcd_debugging_mvcc_watcher_total", "Total number of watchers.",
                                value=m.watchers())
        yield GaugeMetricFamily("etcd_debugging_auth_revision", "The current revision of auth store.",
                                value=m.auth_revision())

    def _grpc_server(self) -> Iterable[Metric]:
        stats = self._grpc
        labels = ["grpc_method", "grpc_service", "grpc_type"]
        started = CounterMetricFamily("grpc_server_started", "Total number of RPCs started on the server.",
                                      labels=labels)
        received = CounterMetricFamily("grpc_server_msg_received",
                                       "Total number of RPC stream messages received on the server.", labels=labels)
        sent = CounterMetricFamily("grpc_server_msg_sent",
                                   "Total number of gRPC stream messages sent by the server.", labels=labels)
        for (kind, service, method), count in sorted(stats.started.items()):
            started.add_metric([method, service, kind], count)
            received.add_metric([method, service, kind], stats.msg_received[(kind, service, method)])
            sent.add_metric([method, service, kind], stats.msg_sent[(kind, service, method)])
        handled = CounterMetricFamily(
            "grpc_server_handled", "Total number of RPCs completed on the server, regardless of success or failure.",
            labels=["grpc_code", *labels])
        for ((kind, service, method), code), count in sorted(stats.handled.items()):
            handled.add_metric([code, method, service, kind], count)
        yield from (handled, received, sent, started)
        if stats.extensive:
            seconds = HistogramMetricFamily(
                "grpc_server_handling_seconds",
                "Histogram of response latency (seconds) of gRPC that had been application-level handled by "
                "the server.", labels=labels)
            for (kind, service, method), data in sorted(stats.handling.items()):
                add_histogram(seconds, data, {"grpc_method": method, "grpc_service": service, "grpc_type": kind})
            yield seconds


@dataclass(slots=True)
class MemberMetrics:
    """A member's registry and the counters its parts fill in."""

    registry: CollectorRegistry
    grpc_stats: GrpcStats
    disk: DiskObservers


def member_metrics(member: MemberView, *, extensive: bool) -> MemberMetrics:
    grpc_stats = GrpcStats(extensive=extensive)
    wal_fsync, backend_commit = DurationHistogram(DISK_BUCKETS), DurationHistogram(DISK_BUCKETS)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EtcdCollector(member, grpc_stats, wal_fsync, backend_commit))
    ProcessCollector(registry=registry)
    return MemberMetrics(registry, grpc_stats, DiskObservers(wal_fsync.observe, backend_commit.observe))
