"""The README's Procfile flow, the tutorial's goreman steps done with honcho.

`honcho check` validates the Procfile, `honcho start` runs the three members, one member is
stopped and started again on its own (`honcho start etcd1`) and rejoins with its data. The
Procfile uses the tutorial's fixed ports, so this runs inside a private network namespace.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from tests.cluster.netns import loopback_namespace, netns_available
from tests.cluster.test_seed_walkthrough import REPO

BIN = pathlib.Path(sys.executable).parent
HONCHO = BIN / "honcho"
TUTORIAL_TABLE = """\
+------------------+---------+--------+------------------------+------------------------+------------+
|        ID        | STATUS  |  NAME  |       PEER ADDRS       |      CLIENT ADDRS      | IS LEARNER |
+------------------+---------+--------+------------------------+------------------------+------------+
| 8211f1d0f64f3269 | started | infra1 | http://127.0.0.1:12380 |  http://127.0.0.1:2379 |      false |
| 91bc3c398fb3c146 | started | infra2 | http://127.0.0.1:22380 | http://127.0.0.1:22379 |      false |
| fd422379fda50e48 | started | infra3 | http://127.0.0.1:32380 | http://127.0.0.1:32379 |      false |
+------------------+---------+--------+------------------------+------------------------+------------+
"""

pytestmark = [
    pytest.mark.skipif(not netns_available(), reason="needs root and iproute2 for a network namespace"),
]


def in_namespace(namespace: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", namespace, *argv]


def etcdctl(namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(in_namespace(namespace, "etcdctl", "--dial-timeout=2s", "--command-timeout=5s", *args),
                          env={**os.environ, "ETCDCTL_API": "3"}, capture_output=True, text=True, timeout=30)


def wait_healthy(namespace: str, endpoint: str, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if etcdctl(namespace, f"--endpoints={endpoint}", "endpoint", "health").returncode == 0:
            return True
        time.sleep(0.3)
    return False


def honcho(namespace: str, workdir: str, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    return subprocess.Popen(in_namespace(namespace, str(HONCHO), "-f", str(REPO / "Procfile"), *args), cwd=workdir,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_honcho_check_accepts_the_procfile() -> None:
    checked = subprocess.run([str(HONCHO), "-f", str(REPO / "Procfile"), "check"], capture_output=True, text=True)
    assert checked.returncode == 0
    assert "Valid procfile detected (etcd1, etcd2, etcd3)" in checked.stderr + checked.stdout


def test_procfile_cluster_starts_and_a_member_restarts_on_its_own() -> None:
    with loopback_namespace("pyetcd-procfile") as namespace, tempfile.TemporaryDirectory() as workdir:
        cluster = honcho(namespace, workdir, "start", "etcd2", "etcd3")
        member1 = honcho(namespace, workdir, "start", "etcd1")
        try:
            for endpoint in ("127.0.0.1:2379", "127.0.0.1:22379", "127.0.0.1:32379"):
                assert wait_healthy(namespace, endpoint), f"{endpoint} never became healthy"
            assert etcdctl(namespace, "member", "list", "-w", "table").stdout == TUTORIAL_TABLE

            stop(member1)  # the equivalent of `goreman run stop etcd1`
            written = etcdctl(namespace, "--endpoints=127.0.0.1:22379", "put", "/procfile/while-down", "yes")
            assert written.stdout.strip() == "OK"

            member1 = honcho(namespace, workdir, "start", "etcd1")  # `goreman run start etcd1`
            assert wait_healthy(namespace, "127.0.0.1:2379")
            seen = etcdctl(namespace, "--endpoints=127.0.0.1:2379", "get", "/procfile/while-down", "--print-value-only")
            assert seen.stdout.strip() == "yes"
            assert os.path.isdir(os.path.join(workdir, "infra1.etcd"))
        finally:
            stop(member1)
            stop(cluster)
