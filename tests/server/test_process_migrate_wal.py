"""`pyetcd migrate` never drops writes an etcd member acknowledged: its WAL is read beside its db.

etcd commits its backend in batches (``--backend-batch-interval``), so after SIGKILL the db can lack
writes that only the WAL holds; migrate replays them, or refuses what it cannot replay. A torn last
WAL record is dropped as etcd repairs it; damage before the tail is refused. All of it against a real etcd's files.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from pyetcd.etcd_wal_tail import unapplied_entries
from pyetcd.snapshot_file import contents_of_etcd_database
from storage.etcdwal import WalCorruptError, read_wal
from tests.helpers.servers import PYETCD_BINARY, ServerProcess, StartServer, error_lines, free_port

# The backend commits only when the member stops: what a crash leaves is then certain, not a race
# with etcd's 100 ms default.
SLOW_BACKEND = ("--backend-batch-interval=10m", "--backend-batch-limit=1000000")
KEYS = {f"k{i}": f"v{i}" for i in range(5)} | {"last": "x", "final": "y"}


def put_keys(etcd: ServerProcess) -> None:
    for key, value in KEYS.items():
        assert etcd.etcdctl("put", key, value).stdout.strip() == "OK"


def served_keys(server: ServerProcess) -> dict[str, str]:
    lines = server.etcdctl("get", "--prefix", "").stdout.splitlines()
    return dict(zip(lines[::2], lines[1::2], strict=True))


def migrate(source: Path, target: Path, peer_port: int) -> subprocess.CompletedProcess[str]:
    peer = f"http://127.0.0.1:{peer_port}"
    return subprocess.run([str(PYETCD_BINARY), "migrate", f"--from-etcd-data-dir={source}", f"--data-dir={target}",
                           "--name=new", f"--initial-cluster=new={peer}", f"--initial-advertise-peer-urls={peer}"],
                          capture_output=True, text=True, timeout=120)


def migrated_keys(source: Path, target: Path) -> dict[str, str]:
    """Migrate, start the new member, and read back its whole keyspace."""
    peer_port = free_port()
    moved = migrate(source, target, peer_port)
    assert moved.returncode == 0, moved.stderr
    member = ServerProcess(binary="pyetcd", name="new", data_dir=target, client_port=free_port(), peer_port=peer_port)
    try:
        member.start()
        return served_keys(member)
    finally:
        member.stop()


def last_wal_file(data_dir: Path) -> Path:
    return sorted((data_dir / "member" / "wal").glob("*.wal"))[-1]


def frame_offsets(wal_file: Path) -> list[int]:
    """Where each record's 8-byte length frame starts (up to the preallocated zeros)."""
    data, offsets, at = wal_file.read_bytes(), [], 0
    while at + 8 <= len(data) and (length := int.from_bytes(data[at:at + 8], "little")):
        offsets.append(at)
        at += 8 + (length & ((1 << 56) - 1)) + ((length >> 56) & 7 if length >> 63 else 0)
    return offsets


@pytest.fixture
def stopped_etcd(start_server: StartServer) -> ServerProcess:
    """A member that acknowledged KEYS and was then stopped cleanly (SIGTERM)."""
    etcd = start_server("etcd", name="clean")
    put_keys(etcd)
    etcd.stop()
    return etcd


def served_json(server: ServerProcess) -> tuple[int, list[object], list[object], str]:
    """The revision, every key with its revisions, version and lease, the leases a member serves, and its
    answer for a compacted revision."""
    got = json.loads(server.etcdctl("get", "--prefix", "", "-w", "json").stdout)
    leases = json.loads(server.etcdctl("lease", "list", "-w", "json").stdout)["leases"] or []
    compacted = error_lines(server.etcdctl("get", "k1", "--rev=3").stderr)[-1]
    return got["header"]["revision"], got["kvs"], sorted(lease["id"] for lease in leases), compacted


def crash_after_writes(etcd: ServerProcess) -> None:
    """Acknowledged puts, a compaction, a delete, a leased key and a revoked lease; then SIGKILL before the
    backend commits."""
    put_keys(etcd)
    assert etcd.etcdctl("compact", "4").returncode == 0
    assert etcd.etcdctl("del", "k0").stdout.strip() == "1"
    kept = etcd.etcdctl("lease", "grant", "600").stdout.split()[1]
    assert etcd.etcdctl("put", "leased", "z", f"--lease={kept}").returncode == 0
    dropped = etcd.etcdctl("lease", "grant", "900").stdout.split()[1]
    assert etcd.etcdctl("lease", "revoke", dropped).returncode == 0
    etcd.kill()


def test_crashed_etcd_migrates_with_every_acknowledged_write(start_server: StartServer, tmp_path: Path) -> None:
    etcd = start_server("etcd", name="crashed", extra_args=SLOW_BACKEND)
    crash_after_writes(etcd)
    wal = read_wal(str(etcd.data_dir / "member" / "wal"))
    database = contents_of_etcd_database((etcd.data_dir / "member" / "snap" / "db").read_bytes())
    assert {e.what for e in unapplied_entries(database, wal)} >= {"put", "delete_range", "lease_grant"}

    peer_port = free_port()
    moved = migrate(etcd.data_dir, tmp_path / "migrated.etcd", peer_port)
    assert moved.returncode == 0, moved.stderr
    member = ServerProcess(binary="pyetcd", name="new", data_dir=tmp_path / "migrated.etcd",
                           client_port=free_port(), peer_port=peer_port)
    try:
        member.start()
        migrated = served_json(member)
    finally:
        member.stop()

    etcd.start()  # etcd replays the same WAL tail on restart
    assert migrated == served_json(etcd)
    assert "compacted" in migrated[3]
    assert served_keys(etcd) == {k: v for k, v in KEYS.items() if k != "k0"} | {"leased": "z"}
    etcd.stop()  # stopped cleanly, the db holds everything: the migration needs no replay
    assert not unapplied_entries(contents_of_etcd_database((etcd.data_dir / "member" / "snap" / "db").read_bytes()),
                                 read_wal(str(etcd.data_dir / "member" / "wal")))
    assert migrated_keys(etcd.data_dir, tmp_path / "clean.etcd") == served_keys_of(migrated)


def served_keys_of(served: tuple[int, list[object], list[object], str]) -> dict[str, str]:
    return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv["value"]).decode()  # type: ignore[index]
            for kv in served[1]}


def test_a_crash_with_changes_pyetcd_cannot_replay_is_refused_untouched(
        start_server: StartServer, tmp_path: Path) -> None:
    etcd = start_server("etcd", name="crashed", extra_args=SLOW_BACKEND)
    put_keys(etcd)
    assert etcd.etcdctl("user", "add", "alice", "--new-user-password=secret").returncode == 0
    etcd.kill()

    target = tmp_path / "migrated.etcd"
    refused = migrate(etcd.data_dir, target, free_port())
    assert refused.returncode == 1
    assert "auth_user_add" in refused.stderr and "stop it cleanly (SIGTERM)" in refused.stderr
    assert not target.exists()


@pytest.mark.parametrize("tear", ["cut short", "zeroed sector"])
def test_a_torn_last_wal_record_is_dropped_as_etcd_repairs_it(
        stopped_etcd: ServerProcess, tmp_path: Path, tear: str) -> None:
    source = tmp_path / "torn.etcd"
    shutil.copytree(stopped_etcd.data_dir, source)
    wal_file = last_wal_file(source)
    whole = read_wal(str(wal_file.parent))
    last = frame_offsets(wal_file)[-1]
    data = bytearray(wal_file.read_bytes())
    if tear == "cut short":
        del data[last + 11:]
    else:
        length = int.from_bytes(data[last:last + 8], "little") & ((1 << 56) - 1)
        data[last + 8:last + 8 + length] = bytes(length)
    wal_file.write_bytes(bytes(data))

    torn = read_wal(str(wal_file.parent))
    assert torn.torn_tail_bytes == len(data) - last
    assert len(torn.entries) + len(torn.snapshots) < len(whole.entries) + len(whole.snapshots) \
        or torn.hard_state != whole.hard_state
    assert migrated_keys(source, tmp_path / "migrated.etcd") == KEYS

    if tear == "cut short":  # real etcd repairs the same file and starts with the same keys
        etcd_copy = ServerProcess(binary="etcd", name="clean", data_dir=source, client_port=free_port(),
                                  peer_port=stopped_etcd.peer_port)
        try:
            etcd_copy.start()
            assert served_keys(etcd_copy) == KEYS
        finally:
            etcd_copy.stop()


def test_a_damaged_record_before_the_tail_is_refused(stopped_etcd: ServerProcess, tmp_path: Path) -> None:
    source = tmp_path / "damaged.etcd"
    shutil.copytree(stopped_etcd.data_dir, source)
    wal_file = last_wal_file(source)
    middle = frame_offsets(wal_file)[3]
    data = bytearray(wal_file.read_bytes())
    data[middle + 12] ^= 0x5A
    wal_file.write_bytes(bytes(data))

    with pytest.raises(WalCorruptError, match="crc mismatch|record at offset"):
        read_wal(str(wal_file.parent))
    target = tmp_path / "migrated.etcd"
    refused = migrate(source, target, free_port())
    assert refused.returncode == 1 and str(wal_file) in refused.stderr
    assert not target.exists()
