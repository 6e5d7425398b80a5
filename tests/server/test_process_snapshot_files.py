"""Damaged snapshot files get etcd's error and exit status 1 and leave no data dir behind; a stopped
etcd member's data dir migrates to pyetcd; long restores show progress on a terminal only."""

from __future__ import annotations

import hashlib
import os
import pty
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from storage.bbolt import BoltReader
from storage.bbolt import layout as L
from tests.helpers.servers import PYETCD_BINARY, ServerProcess, StartServer, error_lines, free_port
from tests.server.test_process_etcd_snapshots import etcdctl, served, write_history

PAGE = L.DEFAULT_PAGE_SIZE


@pytest.fixture(scope="module")
def etcd_snapshot(start_module_server: StartServer, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of a snapshot real etcd saved of the shared history."""
    etcd = start_module_server("etcd", name="hostile")
    write_history(etcd.endpoint)
    path = tmp_path_factory.mktemp("snapshots") / "etcd.db"
    assert etcd.etcdctl("snapshot", "save", str(path)).returncode == 0
    return path.read_bytes()


def restore_flags(data_dir: Path) -> list[str]:
    peer = f"http://127.0.0.1:{free_port()}"
    return [f"--data-dir={data_dir}", "--name=m", f"--initial-cluster=m={peer}",
            f"--initial-advertise-peer-urls={peer}"]


def with_trailer(database: bytes) -> bytes:
    return database + hashlib.sha256(database).digest()


def flip(data: bytes, offset: int) -> bytes:
    damaged = bytearray(data)
    damaged[offset] ^= 0x5A
    return bytes(damaged)


def both_metas_damaged(database: bytes) -> bytes:
    for page in (0, 1):
        database = flip(database, page * PAGE + L.PAGE_HEADER.size + 24)  # inside the root field
    return database


def a_leaf_claiming_too_many_elements(database: bytes) -> bytes:
    reader = BoltReader(database)
    damaged = bytearray(database)
    start = reader.meta.root * PAGE
    stored_id, flags, _, overflow = L.PAGE_HEADER.unpack_from(damaged, start)
    L.PAGE_HEADER.pack_into(damaged, start, stored_id, flags, 0xFFFF, overflow)
    return bytes(damaged)


def restore_both(tmp_path: Path, snapshot: bytes, *extra: str) -> tuple[subprocess.CompletedProcess[str], ...]:
    path = tmp_path / "hostile.db"
    path.write_bytes(snapshot)
    theirs = etcdctl("snapshot", "restore", str(path), *restore_flags(tmp_path / "etcd.etcd"), *extra)
    ours = subprocess.run([str(PYETCD_BINARY), "snapshot", "restore", str(path),
                           *restore_flags(tmp_path / "pyetcd.etcd"), *extra],
                          capture_output=True, text=True, timeout=120)
    return theirs, ours


@pytest.mark.parametrize("damage", [
    pytest.param(lambda db: flip(db, len(db) // 2) + hashlib.sha256(db).digest(), id="flipped-byte-old-trailer"),
    pytest.param(lambda db: with_trailer(db)[:-40], id="truncated"),
    pytest.param(lambda db: with_trailer(db)[:3 * PAGE + 32], id="truncated-at-a-trailer-length"),
])
def test_a_snapshot_that_fails_its_hash_check_gets_etcds_error(etcd_snapshot: bytes, tmp_path: Path,
                                                                damage: Callable[[bytes], bytes]) -> None:
    theirs, ours = restore_both(tmp_path, damage(etcd_snapshot[:-32]))
    assert theirs.returncode == ours.returncode == 1
    assert error_lines(ours.stderr) == error_lines(theirs.stderr)[-1:]
    assert error_lines(ours.stderr)[0].startswith(("Error: expected sha256 [", "Error: snapshot missing hash"))
    assert not (tmp_path / "pyetcd.etcd").exists()


@pytest.mark.parametrize("damage, error, trailer", [
    pytest.param(both_metas_damaged, "Error: checksum error", "recomputed", id="bad-meta-checksums"),
    pytest.param(lambda db: db[:2 * PAGE], "Error: file is truncated", "skip-hash-check", id="truncated"),
    pytest.param(a_leaf_claiming_too_many_elements, "Error: page ", "recomputed", id="damaged-page"),
    pytest.param(a_leaf_claiming_too_many_elements, "Error: page ", "skip-hash-check", id="damaged-page-no-hash"),
])
def test_a_damaged_database_is_refused_and_leaves_nothing(etcd_snapshot: bytes, tmp_path: Path,
                                                          damage: Callable[[bytes], bytes], error: str,
                                                          trailer: str) -> None:
    database = damage(etcd_snapshot[:-32])
    snapshot = with_trailer(database) if trailer == "recomputed" else database
    path = tmp_path / "damaged.db"
    path.write_bytes(snapshot)
    extra = ["--skip-hash-check"] if trailer == "skip-hash-check" else []
    ours = subprocess.run([str(PYETCD_BINARY), "snapshot", "restore", str(path),
                           *restore_flags(tmp_path / "pyetcd.etcd"), *extra],
                          capture_output=True, text=True, timeout=120)
    assert ours.returncode == 1
    assert error_lines(ours.stderr)[0].startswith(error), ours.stderr
    assert "Traceback" not in ours.stderr
    assert not (tmp_path / "pyetcd.etcd").exists()
    status = subprocess.run([str(PYETCD_BINARY), "snapshot", "status", str(path)], capture_output=True, text=True)
    assert status.returncode == 1 and error_lines(status.stderr)[0].startswith(error)
    if damage is both_metas_damaged:  # etcdctl says the same
        theirs = etcdctl("snapshot", "status", str(path))
        assert (theirs.returncode, error_lines(theirs.stderr)) == (1, ["Error: checksum error"])


def test_migrate_from_a_stopped_etcd_data_dir(start_server: StartServer, tmp_path: Path) -> None:
    etcd = start_server("etcd", name="old")
    revisions = write_history(etcd.endpoint)
    expected = served(etcd, revisions)
    peer_port = free_port()
    peer = f"http://127.0.0.1:{peer_port}"
    target = tmp_path / "migrated.etcd"
    migrate = [str(PYETCD_BINARY), "migrate", f"--from-etcd-data-dir={etcd.data_dir}", f"--data-dir={target}",
               "--name=new", f"--initial-cluster=new={peer}", f"--initial-advertise-peer-urls={peer}"]

    running = subprocess.run(migrate, capture_output=True, text=True, timeout=120)
    assert running.returncode == 1
    assert "stop the etcd member" in running.stderr
    assert not target.exists()

    etcd.stop()  # etcd exits on SIGTERM with the signal's status
    assert etcd.process is not None and etcd.process.poll() is not None
    moved = subprocess.run(migrate, capture_output=True, text=True, timeout=120)
    assert moved.returncode == 0, moved.stderr
    assert moved.stderr == ""  # not a terminal: no progress
    member = ServerProcess(binary="pyetcd", name="new", data_dir=target, client_port=free_port(), peer_port=peer_port)
    try:
        member.start()
        assert served(member, revisions) == expected
    finally:
        member.stop()


def test_restore_shows_progress_on_a_terminal(etcd_snapshot: bytes, tmp_path: Path) -> None:
    path = tmp_path / "etcd.db"
    path.write_bytes(etcd_snapshot)
    controller, terminal = pty.openpty()
    try:
        done = subprocess.run([str(PYETCD_BINARY), "snapshot", "restore", str(path),
                               *restore_flags(tmp_path / "tty.etcd")],
                              stdout=subprocess.DEVNULL, stderr=terminal, timeout=120)
        os.close(terminal)
        shown = b""
        try:
            while chunk := os.read(controller, 4096):
                shown += chunk
        except OSError:  # the terminal side is closed: everything was read
            pass
    finally:
        os.close(controller)
    assert done.returncode == 0
    assert b"restoring: " in shown and b" keys, " in shown and b"done" in shown


def test_an_existing_data_dir_is_refused_as_etcd_refuses_it(etcd_snapshot: bytes, tmp_path: Path) -> None:
    path = tmp_path / "etcd.db"
    path.write_bytes(etcd_snapshot)
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep").write_text("mine")
    flags = restore_flags(existing)
    theirs = etcdctl("snapshot", "restore", str(path), *flags)
    ours = subprocess.run([str(PYETCD_BINARY), "snapshot", "restore", str(path), *flags],
                          capture_output=True, text=True, timeout=120)
    assert (ours.returncode, error_lines(ours.stderr)) == (theirs.returncode, error_lines(theirs.stderr)[-1:]) \
        == (1, [f'Error: data-dir "{existing}" exists'])
    assert [p.name for p in existing.iterdir()] == ["keep"]


@pytest.mark.parametrize("args", [["status"], ["restore", "a.db", "b.db"]])
def test_a_wrong_number_of_files_gets_etcdctls_error(args: list[str]) -> None:
    theirs = etcdctl("snapshot", *args)
    ours = subprocess.run([str(PYETCD_BINARY), "snapshot", *args], capture_output=True, text=True, timeout=60)
    assert (ours.returncode, ours.stderr) == (theirs.returncode, theirs.stderr) == \
        (128, f"Error: snapshot {args[0]} requires exactly one argument\n")
