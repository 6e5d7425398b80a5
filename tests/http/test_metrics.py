"""/metrics read by Prometheus' own text parser, from real etcd and pyetcd side by side.

Every metric the operator section lists must exist in pyetcd with etcd's type and label names,
and the counters must move when the matching work happens. --listen-metrics-urls serves
/metrics and /health (and nothing else), and --metrics=extensive adds the handling histogram.
On three members, the peer families count each peer's traffic, and the cluster version the
leader decided goes from 3.0 to 3.4 once a member that was down answers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from tests.cluster.cluster import Cluster, wait_until
from tests.helpers.servers import ServerProcess, StartServer, free_port
from tests.http.httpget import http_get

LISTED = (
    "etcd_server_has_leader", "etcd_server_is_leader", "etcd_server_leader_changes_seen",
    "etcd_server_proposals_committed_total", "etcd_server_proposals_applied_total", "etcd_server_proposals_pending",
    "etcd_server_proposals_failed", "etcd_server_id", "etcd_server_version", "etcd_server_quota_backend_bytes",
    "etcd_server_health_success", "etcd_server_health_failures", "etcd_server_slow_apply",
    "etcd_server_heartbeat_send_failures", "etcd_cluster_version",
    "etcd_mvcc_db_total_size_in_bytes",
    "etcd_mvcc_db_total_size_in_use_in_bytes", "etcd_mvcc_put", "etcd_mvcc_delete", "etcd_mvcc_range",
    "etcd_mvcc_txn", "etcd_debugging_mvcc_keys_total", "etcd_debugging_mvcc_watcher_total",
    "etcd_disk_wal_fsync_duration_seconds", "etcd_disk_backend_commit_duration_seconds",
    "etcd_network_client_grpc_sent_bytes", "etcd_network_client_grpc_received_bytes", "grpc_server_started",
    "grpc_server_handled", "grpc_server_msg_received", "grpc_server_msg_sent", "process_cpu_seconds",
    "process_resident_memory_bytes", "process_open_fds", "process_max_fds", "process_start_time_seconds",
    "process_virtual_memory_bytes",
)
"""Family names as the parser gives them (a counter's `_total` is dropped)."""
PEER_FAMILIES = (
    "etcd_network_peer_sent_bytes", "etcd_network_peer_received_bytes", "etcd_network_peer_sent_failures",
    "etcd_network_peer_round_trip_time_seconds", "etcd_server_heartbeat_send_failures", "etcd_cluster_version",
)
"""What a 3-member cluster's leader shows (etcd_network_peer_received_failures too, once a receive fails:
tests/raft/test_transport.py makes one)."""


def families(url: str) -> dict[str, Metric]:
    answer = http_get(url)
    assert answer.status == 200, answer
    assert answer.content_type.startswith("text/plain; version=0.0.4")
    return {family.name: family for family in text_string_to_metric_families(answer.body.decode())}


def sample(metrics: dict[str, Metric], family: str, suffix: str = "", **labels: str) -> float:
    found = [s.value for s in metrics[family].samples
             if s.name == family + suffix and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (family, suffix, labels, metrics[family].samples[:5])
    return found[0]


def label_names(metric: Metric) -> Iterator[set[str]]:
    for s in metric.samples:
        yield set(s.labels) - {"le"}


def work(server: ServerProcess) -> None:
    for args in (("put", "/m/a", "1"), ("get", "/m/a"), ("del", "/m/a"), ("get", "/m/none", "--rev=1000000")):
        server.etcdctl(*args)
    assert server.etcdctl("txn", input="\nput /m/b 2\nput /m/c 3\n\n\n").returncode == 0


@pytest.fixture(scope="module")
def pair(start_module_server: StartServer) -> dict[str, ServerProcess]:
    return {binary: start_module_server(binary, name="metrics") for binary in ("etcd", "pyetcd")}


def test_every_listed_metric_has_etcds_type_and_labels(pair: dict[str, ServerProcess]) -> None:
    for server in pair.values():
        work(server)
    etcd, pyetcd = (families(f"{pair[b].client_url}/metrics") for b in ("etcd", "pyetcd"))
    for name in LISTED:
        assert name in etcd, f"real etcd has no {name}"
        assert name in pyetcd, f"pyetcd has no {name}"
        assert pyetcd[name].type == etcd[name].type, name
        assert pyetcd[name].documentation == etcd[name].documentation or name.startswith("process_"), name
        assert set(map(frozenset, label_names(pyetcd[name]))) == set(map(frozenset, label_names(etcd[name]))), name
    for metrics in (etcd, pyetcd):
        assert sample(metrics, "etcd_server_has_leader") == 1
        assert sample(metrics, "etcd_server_is_leader") == 1
        assert sample(metrics, "etcd_server_version", server_version="3.4.23") == 1
        # go-grpc-prometheus starts every method at zero with every code.
        assert sample(metrics, "grpc_server_handled", "_total", grpc_method="Compact", grpc_code="DataLoss",
                      grpc_service="etcdserverpb.KV", grpc_type="unary") == 0
        assert sample(metrics, "grpc_server_handled", "_total", grpc_method="Range", grpc_code="OutOfRange",
                      grpc_service="etcdserverpb.KV", grpc_type="unary") == 1


def settled_metrics(server: ServerProcess, before: dict[str, Metric]) -> dict[str, Metric]:
    """The metrics once the backend has committed the work: etcd commits its backend in batches
    (every 100 ms by default), so its commit counter moves a little after the requests return."""
    family, suffix = "etcd_disk_backend_commit_duration_seconds", "_count"
    deadline = time.monotonic() + 10
    while True:
        after = families(f"{server.client_url}/metrics")
        if sample(after, family, suffix) > sample(before, family, suffix) or time.monotonic() > deadline:
            return after
        time.sleep(0.1)


def test_counters_move_with_the_work_they_count(pair: dict[str, ServerProcess]) -> None:
    for server in pair.values():
        before = families(f"{server.client_url}/metrics")
        work(server)
        assert http_get(f"{server.client_url}/health").status == 200
        after = settled_metrics(server, before)

        def moved(family: str, suffix: str = "_total", before: dict[str, Metric] = before,
                  after: dict[str, Metric] = after, **labels: str) -> float:
            return sample(after, family, suffix, **labels) - sample(before, family, suffix, **labels)

        put = {"grpc_method": "Put", "grpc_service": "etcdserverpb.KV", "grpc_type": "unary"}
        assert moved("etcd_mvcc_put") >= 1, server.binary
        assert moved("etcd_mvcc_range") >= 1, server.binary
        assert moved("etcd_mvcc_delete") == 1, server.binary
        assert moved("etcd_mvcc_txn") >= 1, server.binary
        assert moved("grpc_server_started", **put) == 1, server.binary
        assert moved("grpc_server_handled", grpc_code="OK", **put) == 1, server.binary
        assert moved("grpc_server_msg_received", **put) == 1, server.binary
        assert moved("grpc_server_msg_sent", **put) == 1, server.binary
        assert moved("etcd_network_client_grpc_received_bytes") > 0, server.binary
        assert moved("etcd_network_client_grpc_sent_bytes") > 0, server.binary
        assert moved("etcd_disk_wal_fsync_duration_seconds", "_count") >= 3, server.binary
        assert moved("etcd_disk_backend_commit_duration_seconds", "_count") >= 1, server.binary
        assert moved("etcd_server_proposals_committed_total", "") >= 3, server.binary
        assert moved("etcd_server_proposals_applied_total", "") >= 3, server.binary
        assert moved("etcd_server_health_success") == 1, server.binary
        assert moved("etcd_server_health_failures") == 0, server.binary


@pytest.mark.parametrize("binary", ["etcd", "pyetcd"])
def test_metrics_urls_serve_metrics_and_health_and_extensive_adds_handling_times(
        binary: str, start_server: StartServer) -> None:
    metrics_url = f"http://127.0.0.1:{free_port()}"
    server = start_server(binary, name="murl", extra_args=[f"--listen-metrics-urls={metrics_url}",
                                                            "--metrics=extensive"])
    server.etcdctl("put", "/m/x", "1")
    metrics = families(f"{metrics_url}/metrics")
    assert metrics["grpc_server_handling_seconds"].type == "histogram"
    assert sample(metrics, "grpc_server_handling_seconds", "_count", grpc_method="Put",
                  grpc_service="etcdserverpb.KV", grpc_type="unary") == 1
    assert http_get(f"{metrics_url}/health").status == 200
    assert http_get(f"{metrics_url}/version").status == 404


def test_etcdctl_check_datascale_reads_the_memory_metric(start_server: StartServer) -> None:
    server = start_server("pyetcd", name="scale")
    result = server.etcdctl("check", "datascale", "--load=s", timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS: Approximate system memory used" in result.stdout, result.stdout


def version_of(member: ServerProcess) -> bytes:
    return http_get(member.client_url + "/version").body


def cluster_version(version: str) -> bytes:
    return b'{"etcdserver":"3.4.23","etcdcluster":"%s"}' % version.encode()


def moved(before: dict[str, Metric], after: dict[str, Metric], family: str, **labels: str) -> float:
    return sample(after, family, "_total", **labels) - sample(before, family, "_total", **labels)


def sampled_peers(member: ServerProcess, family: str) -> set[str]:
    metric = families(member.client_url + "/metrics").get(family)
    return {s.labels["To"] for s in metric.samples} if metric is not None else set()


def late_third_member(binary: str, base: Path) -> dict[str, Metric]:
    """Two of three members start, so the leader cannot ask the third and sets etcd's minimum, 3.0;
    once the third is up it raises the cluster version to 3.4. Then a few puts: the leader's
    metrics after them are returned, with the per-peer families checked against the peers' IDs."""
    cluster = Cluster(base / binary, binary=binary)
    try:
        cluster.start(3, running=2)
        first, _, third = cluster.members
        assert wait_until(lambda: version_of(first) == cluster_version("3.0.0"), 15), version_of(first)
        third.start(timeout=60)
        for member in cluster.members:
            assert wait_until(lambda m=member: version_of(m) == cluster_version("3.4.0"), 20), member.name
            log = member.log_path.read_text(errors="replace")
            assert "updated the cluster version from 3.0 to 3.4" in log, (binary, member.name)
        leader = cluster.leader()
        peers = [f"{cluster.member_id(m):x}" for m in cluster.members if m is not leader]
        before = families(leader.client_url + "/metrics")
        for number in range(5):
            assert leader.etcdctl("put", f"/peer/{number}", "v" * 100).returncode == 0
        # etcd's prober samples a peer's round trip 5 s after it knows the peer, then every 30 s.
        round_trips = "etcd_network_peer_round_trip_time_seconds"
        assert wait_until(lambda: sampled_peers(leader, round_trips) >= set(peers), 15), binary
        after = families(leader.client_url + "/metrics")
        for peer in peers:
            # The puts' values go out to each follower; what comes back is their (smaller) answers.
            sent = moved(before, after, "etcd_network_peer_sent_bytes", To=peer)
            received = moved(before, after, "etcd_network_peer_received_bytes", From=peer)
            assert sent > 5 * 100 and received > 0, (binary, peer, sent, received)
            assert sample(after, round_trips, "_count", To=peer) >= 1, (binary, peer)
        third_id = f"{cluster.member_id(third):x}"
        assert sample(after, "etcd_network_peer_sent_failures", "_total", To=third_id) >= 1, binary
        assert sample(after, "etcd_cluster_version", cluster_version="3.4") == 1
        assert sample(after, "etcd_cluster_version", cluster_version="3.0") == 0
        return after
    finally:
        cluster.stop()


def test_three_members_count_peer_traffic_and_raise_the_cluster_version_as_etcd(tmp_path: Path) -> None:
    found = {binary: late_third_member(binary, tmp_path) for binary in ("etcd", "pyetcd")}
    etcd, pyetcd = found["etcd"], found["pyetcd"]
    for name in PEER_FAMILIES:
        assert pyetcd[name].type == etcd[name].type, name
        assert pyetcd[name].documentation == etcd[name].documentation, name
        assert set(map(frozenset, label_names(pyetcd[name]))) == set(map(frozenset, label_names(etcd[name]))), name
