"""Users, roles, permissions and the enabled flag travel in snapshot files, both ways with real etcd.

pyetcd keeps them in etcd's own buckets and encodings, so a snapshot saved from pyetcd restores
into a real etcd that then asks for the same passwords and grants the same keys, and the reverse.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.cluster.cluster import wait_until
from tests.helpers.servers import PYETCD_BINARY, ServerProcess, error_lines, free_port, run_etcdctl

ROOT = "--user=root:rootpw"
ALICE = "--user=alice:alicepw"
FAST_HASHES = ("--bcrypt-cost=4",)


def ok(endpoint: str, *args: str) -> str:
    result = run_etcdctl(endpoint, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def secure(server: ServerProcess) -> None:
    for args in [("user", "add", "root:rootpw"), ("user", "add", "alice:alicepw"), ("role", "add", "reader"),
                 ("role", "grant-permission", "reader", "read", "app/", "--prefix"),
                 ("user", "grant-role", "alice", "reader"), ("auth", "enable"), (ROOT, "put", "app/k", "v"),
                 (ROOT, "put", "secret", "s")]:
        ok(server.endpoint, *args)


def restored_server(binary: str, snapshot: Path, base: Path) -> ServerProcess:
    """A member of `binary` started from `snapshot`, restored by that binary's own restore command."""
    server = ServerProcess(binary=binary, name="m", data_dir=base / f"{binary}-restored.etcd",
                           client_port=free_port(), peer_port=free_port(), extra_args=FAST_HASHES)
    flags = [f"--data-dir={server.data_dir}", "--name=m", f"--initial-cluster=m={server.peer_url}",
             f"--initial-advertise-peer-urls={server.peer_url}"]
    if binary == "etcd":
        command = ["etcdctl", "snapshot", "restore", str(snapshot), *flags]
    else:
        command = [str(PYETCD_BINARY), "snapshot", "restore", str(snapshot), *flags]
    restored = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert restored.returncode == 0, restored.stderr
    server.start(wait=False)
    assert wait_until(lambda: run_etcdctl(server.endpoint, ROOT, "endpoint", "health").returncode == 0)
    return server


def what_the_restored_member_enforces(server: ServerProcess) -> list[object]:
    answers: list[object] = []
    for args in [(ALICE, "get", "app/k"), (ALICE, "get", "secret"), ("get", "app/k"),
                 ("--user=alice:wrong", "get", "app/k"), (ROOT, "role", "get", "reader"), (ROOT, "user", "list")]:
        result = run_etcdctl(server.endpoint, *args)
        answers.append((args, result.returncode, result.stdout, error_lines(result.stderr)))
    return answers


@pytest.mark.parametrize("source,target", [("pyetcd", "etcd"), ("etcd", "pyetcd")])
def test_auth_state_moves_through_a_snapshot_file(tmp_path: Path, source: str, target: str) -> None:
    origin = ServerProcess(binary=source, name="origin", data_dir=tmp_path / "origin.etcd",
                           client_port=free_port(), peer_port=free_port(), extra_args=FAST_HASHES)
    restored: ServerProcess | None = None
    try:
        origin.start()
        secure(origin)
        expected = what_the_restored_member_enforces(origin)
        snapshot = tmp_path / "auth.db"
        ok(origin.endpoint, ROOT, "snapshot", "save", str(snapshot))
        origin.stop()
        restored = restored_server(target, snapshot, tmp_path)
        assert what_the_restored_member_enforces(restored) == expected
        assert expected[1][3] == ["Error: etcdserver: permission denied"]  # alice may not read secret
        assert expected[2][3] == ["Error: etcdserver: user name is empty"]
    finally:
        origin.stop()
        if restored is not None:
            restored.stop()
