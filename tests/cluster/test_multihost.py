"""The tutorial's production note: several machines, the same ports, different addresses.

Three hosts (network namespaces on one bridge), each running pyetcd on 2379/2380 and
listening on 0.0.0.0 while advertising its own address. The cluster must form, serve from
every host, keep serving when one host is cut off, and catch that host up when it returns.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import pytest

from tests.cluster.netns import bridged_hosts, cut_off, netns_available, reconnect

PYETCD = os.path.join(os.path.dirname(sys.executable), "pyetcd")

pytestmark = [
    pytest.mark.skipif(not netns_available(), reason="needs root and iproute2 for network namespaces"),
]


def etcdctl(namespace: str, endpoint: str, *args: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", namespace, "etcdctl", f"--endpoints={endpoint}",
                           "--dial-timeout=2s", "--command-timeout=5s", *args],
                          env={**os.environ, "ETCDCTL_API": "3"}, capture_output=True, text=True, timeout=timeout)


def wait_until(check: object, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.3)
    return False


def start_member(namespace: str, index: int, address: str, cluster: str, workdir: str) -> subprocess.Popen[bytes]:
    """pyetcd on the host's ports 2379/2380, listening on every address and advertising its own."""
    argv = ["ip", "netns", "exec", namespace, PYETCD, "--name", f"h{index}",
            "--data-dir", os.path.join(workdir, f"h{index}.etcd"),
            "--listen-client-urls", "http://0.0.0.0:2379", "--advertise-client-urls", f"http://{address}:2379",
            "--listen-peer-urls", "http://0.0.0.0:2380", "--initial-advertise-peer-urls", f"http://{address}:2380",
            "--initial-cluster-token", "multi-host", "--initial-cluster", cluster, "--initial-cluster-state", "new"]
    with open(os.path.join(workdir, f"h{index}.log"), "wb") as log:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)


@pytest.fixture
def three_hosts() -> Iterator[tuple[list[tuple[str, str]], list[subprocess.Popen[bytes]]]]:
    with bridged_hosts(3) as hosts, tempfile.TemporaryDirectory() as workdir:
        cluster = ",".join(f"h{i}=http://{addr}:2380" for i, (_, addr) in enumerate(hosts))
        processes: list[subprocess.Popen[bytes]] = []
        try:
            for i, (namespace, addr) in enumerate(hosts):
                processes.append(start_member(namespace, i, addr, cluster, workdir))
            yield hosts, processes
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()


Hosts = tuple[list[tuple[str, str]], list[subprocess.Popen[bytes]]]


def test_cluster_on_three_hosts_forms_serves_and_survives_a_host_cut_off(three_hosts: Hosts) -> None:
    hosts, _ = three_hosts
    endpoints = [f"{addr}:2379" for _, addr in hosts]
    for namespace, addr in hosts:
        def healthy_now(ns: str = namespace, a: str = addr) -> bool:
            return etcdctl(ns, f"{a}:2379", "endpoint", "health").returncode == 0

        healthy = wait_until(healthy_now)
        assert healthy, f"{addr} never became healthy"
    listing = etcdctl(hosts[0][0], endpoints[0], "member", "list")
    assert listing.returncode == 0, listing.stderr
    for _, addr in hosts:
        assert f"http://{addr}:2380" in listing.stdout and f"http://{addr}:2379" in listing.stdout

    assert etcdctl(hosts[1][0], endpoints[1], "put", "/multi/a", "1").stdout.strip() == "OK"
    for namespace, endpoint in zip((h[0] for h in hosts), endpoints, strict=True):
        assert etcdctl(namespace, endpoint, "get", "/multi/a", "--print-value-only").stdout.strip() == "1"

    cut_off(hosts, 2)
    assert wait_until(lambda: etcdctl(hosts[0][0], endpoints[0], "put", "/multi/b", "2").stdout.strip() == "OK")
    assert etcdctl(hosts[1][0], endpoints[1], "get", "/multi/b", "--print-value-only").stdout.strip() == "2"
    # The cut-off host cannot serve a linearizable read: it has no quorum.
    assert etcdctl(hosts[2][0], endpoints[2], "get", "/multi/b").returncode != 0

    reconnect(hosts, 2)
    assert wait_until(lambda: etcdctl(hosts[2][0], endpoints[2], "get", "/multi/b",
                                      "--print-value-only").stdout.strip() == "2")
