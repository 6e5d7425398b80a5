"""/metrics read by Prometheus' own text parser, from real etcd and pyetcd side by side.

Every metric the operator section lists must exist in pyetcd with etcd's type and label names,
and the counters must move when the matching work happens. --listen-metrics-urls serves
/metrics and /health (and nothing else), and --metrics=extensive adds the handling histogram.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.servers import ServerProcess, StartServer, free_port
from tests.http.httpget import http_get

LISTED = (
    "etcd_server_has_leader", "etcd_server_is_leader", "etcd_server_leader_changes_seen",
    "etcd_server_proposals_committed_total", "etcd_server_proposals_applied_total", "etcd_server_proposals_pending",
    "etcd_server_proposals_failed", "etcd_server_id", "etcd_server_version", "etcd_server_quota_backend_bytes",
    "etcd_server_health_success", "etcd_server_health_failures", "etcd_server_slow_apply",
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
