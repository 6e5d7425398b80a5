"""GET /health and /version beside gRPC on the client URL, answered as etcd 3.4 answers them.

Each test runs the same steps against real etcd and pyetcd and compares status, content type
and body; /health must turn unhealthy under a NOSPACE alarm (unless excluded) and when the
member loses its quorum, and healthy again once the cause is gone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cluster.cluster import Cluster, wait_until
from tests.helpers.servers import ServerProcess, StartServer
from tests.http.httpget import Answer, http_get

BINARIES = [pytest.param("etcd", id="etcd"), pytest.param("pyetcd", id="pyetcd")]
HEALTHY = Answer(200, "text/plain; charset=utf-8", b'{"health":"true"}')
UNHEALTHY = Answer(503, "text/plain; charset=utf-8", b'{"health":"false"}\n')
QUOTA_BYTES = 1_000_000
VALUE = b"x" * 100_000


def health(server: ServerProcess, query: str = "") -> Answer:
    return http_get(f"{server.client_url}/health{query}")


@pytest.fixture(scope="module")
def pair(start_module_server: StartServer) -> dict[str, ServerProcess]:
    return {"etcd": start_module_server("etcd", name="hv"), "pyetcd": start_module_server("pyetcd", name="hv")}


def test_health_version_and_unknown_paths_answer_as_etcd(pair: dict[str, ServerProcess]) -> None:
    etcd, pyetcd = pair["etcd"], pair["pyetcd"]
    for path in ("/health", "/health?exclude=NOSPACE", "/version", "/no/such/path", "/v2/keys"):
        assert http_get(pyetcd.client_url + path) == http_get(etcd.client_url + path), path
    assert health(pyetcd) == HEALTHY
    assert http_get(pyetcd.client_url + "/version").body == b'{"etcdserver":"3.4.23","etcdcluster":"3.4.0"}'
    for method in ("POST", "PUT", "DELETE"):
        assert http_get(pyetcd.client_url + "/health", method=method) == \
            http_get(etcd.client_url + "/health", method=method) == \
            Answer(405, "text/plain; charset=utf-8", b"Method Not Allowed\n")
    # gRPC keeps working on the same port.
    assert pyetcd.etcdctl("put", "/hv/k", "v").stdout == "OK\n"
    assert pyetcd.etcdctl("get", "/hv/k", "--print-value-only").stdout == "v\n"


@pytest.mark.parametrize("binary", BINARIES)
def test_health_fails_under_nospace_unless_excluded_and_recovers_after_disarm(
        binary: str, start_server: StartServer) -> None:
    server = start_server(binary, name="nospace", extra_args=[f"--quota-backend-bytes={QUOTA_BYTES}"])
    for number in range(3 * QUOTA_BYTES // len(VALUE)):
        if server.etcdctl("put", f"/fill/{number:03d}", input=VALUE).returncode != 0:
            break
    else:
        raise AssertionError("the quota never refused a write")
    assert "alarm:NOSPACE" in server.etcdctl("alarm", "list").stdout
    assert health(server) == UNHEALTHY
    assert health(server, "?exclude=NOSPACE") == HEALTHY
    assert health(server, "?exclude=CORRUPT") == UNHEALTHY
    assert server.etcdctl("del", "/fill/", "--prefix").returncode == 0
    assert server.etcdctl("alarm", "disarm").returncode == 0
    assert health(server) == HEALTHY


def test_health_fails_without_quorum_and_recovers_when_it_returns(tmp_path: Path) -> None:
    # Real etcd passes these same steps (it ran here too before being left out to keep the suite short);
    # the 503 body itself is compared with etcd's above.
    cluster = Cluster(tmp_path / "pyetcd", binary="pyetcd")
    try:
        cluster.start(3)
        first, *others = cluster.members
        assert health(first) == HEALTHY
        for member in others:
            member.stop()
        assert wait_until(lambda: health(first) == UNHEALTHY, timeout=20), health(first)
        for member in others:
            member.start(wait=False)
        assert wait_until(lambda: health(first) == HEALTHY, timeout=30), health(first)
    finally:
        cluster.stop()
