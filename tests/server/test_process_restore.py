"""`etcdctl snapshot save`, then `pyetcd snapshot restore`, then a new member on the restored data.

As with `etcdctl snapshot restore` for etcd: keys keep their revisions, leases come back
(with their keys attached), and the membership is the one the restore flags describe.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

from pyetcd.ids import cluster_id, member_id
from tests.helpers.servers import PYETCD_BINARY, ServerProcess, StartServer, free_port


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def restore(snapshot: Path, data_dir: Path, name: str, peer_url: str, token: str,
            *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PYETCD_BINARY), "snapshot", "restore", str(snapshot), f"--data-dir={data_dir}", f"--name={name}",
         f"--initial-cluster={name}={peer_url}", f"--initial-cluster-token={token}",
         f"--initial-advertise-peer-urls={peer_url}", *extra],
        capture_output=True, text=True, timeout=60)


def test_restored_member_has_the_keys_revisions_and_leases_and_the_new_membership(
        start_server: StartServer, tmp_path: Path) -> None:
    source = start_server("pyetcd", name="source")
    lease = as_json(source.etcdctl("lease", "grant", "600", "-w", "json"))["ID"]
    for key, value in [("/r/a", "1"), ("/r/b", "2"), ("/r/a", "3")]:
        assert source.etcdctl("put", key, value).returncode == 0
    assert source.etcdctl("put", "/r/leased", "v", f"--lease={lease:x}").returncode == 0
    assert source.etcdctl("del", "/r/b").returncode == 0
    before = as_json(source.etcdctl("get", "/r/", "--prefix", "-w", "json"))
    snapshot = tmp_path / "backup.db"
    saved = source.etcdctl("snapshot", "save", str(snapshot))
    assert saved.stdout.splitlines() == [f"Snapshot saved at {snapshot}"], saved.stderr
    assert source.stop() == -signal.SIGTERM

    peer_port, client_port = free_port(), free_port()
    peer_url = f"http://127.0.0.1:{peer_port}"
    data_dir = tmp_path / "restored.etcd"
    result = restore(snapshot, data_dir, "restored", peer_url, "restored-token")
    assert result.returncode == 0, result.stderr
    # A second restore into the same directory is refused rather than mixing data.
    again = restore(snapshot, data_dir, "restored", peer_url, "restored-token")
    assert again.returncode != 0
    assert "exists" in again.stderr

    restored = ServerProcess(binary="pyetcd", name="restored", data_dir=data_dir, client_port=client_port,
                             peer_port=peer_port, extra_args=["--initial-cluster-token=restored-token"])
    try:
        restored.start()
        after = as_json(restored.etcdctl("get", "/r/", "--prefix", "-w", "json"))
        assert after["kvs"] == before["kvs"]
        assert after["header"]["revision"] == before["header"]["revision"]
        # History before the snapshot is still readable at its revisions.
        first_a = before["kvs"][0]["create_revision"]
        old = as_json(restored.etcdctl("get", "/r/a", f"--rev={first_a}", "-w", "json"))
        assert [kv["version"] for kv in old["kvs"]] == [1]
        # The next write continues the revision sequence.
        put = as_json(restored.etcdctl("put", "/r/next", "x", "-w", "json"))
        assert put["header"]["revision"] == before["header"]["revision"] + 1

        ttl = as_json(restored.etcdctl("lease", "timetolive", f"{lease:x}", "--keys", "-w", "json"))
        assert ttl["id"] == lease
        assert ttl["granted-ttl"] == 600
        assert 0 < ttl["ttl"] <= 600
        assert ttl["keys"] == ["L3IvbGVhc2Vk"]  # base64 of /r/leased

        expected_id = member_id([peer_url], "restored-token")
        members = as_json(restored.etcdctl("member", "list", "-w", "json"))
        assert [(m["ID"], m["name"], m["peerURLs"]) for m in members["members"]] == [
            (expected_id, "restored", [peer_url])]
        assert members["header"]["cluster_id"] == cluster_id([expected_id])
        assert restored.etcdctl("alarm", "list").stdout == ""
    finally:
        restored.stop()


def test_restore_refuses_a_corrupted_snapshot(start_server: StartServer, tmp_path: Path) -> None:
    source = start_server("pyetcd", name="src")
    assert source.etcdctl("put", "k", "v").returncode == 0
    snapshot = tmp_path / "backup.db"
    assert source.etcdctl("snapshot", "save", str(snapshot)).returncode == 0
    blob = bytearray(snapshot.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    snapshot.write_bytes(bytes(blob))
    peer_url = f"http://127.0.0.1:{free_port()}"
    result = restore(snapshot, tmp_path / "bad.etcd", "bad", peer_url, "t")
    assert result.returncode != 0
    assert "sha256" in result.stderr
    assert not (tmp_path / "bad.etcd").exists()
