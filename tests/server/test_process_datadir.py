"""One process per data dir, and a data dir only its owner can read: as etcd keeps them.

A second process started on a data dir in use waits for the store's lock (saying so in etcd's
words after 10 s) and never serves; once the first stops it takes over, and the data written
meanwhile is intact. A second process on a --wal-dir in use stops at once with etcd's error.
What the member creates is 0700/0600, an existing wider data dir gets etcd's warning, and
`snapshot restore` never writes into a data or WAL dir that exists.
"""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.servers import PYETCD_BINARY, ServerProcess, StartServer, free_port

BINARIES = ["etcd", "pyetcd"]
STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} ")
STORE_LOCK_WARNING_S = 10.0


def log_lines(server: ServerProcess) -> list[str]:
    """The server's log lines in etcd's format, without their timestamps."""
    text = server.log_path.read_text(errors="replace")
    return [STAMP.sub("", line) for line in text.splitlines() if STAMP.match(line)]


@dataclass
class SharingServer(ServerProcess):
    """A member whose log is its own even when its data dir is another's."""

    log_name: str = ""

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / (self.log_name or f"{self.data_dir.name}.log")


def member(binary: str, data_dir: Path, *extra_args: str, log_name: str = "") -> ServerProcess:
    return SharingServer(binary=binary, name="m", data_dir=data_dir, client_port=free_port(),
                         peer_port=free_port(), extra_args=extra_args, log_name=log_name)


def serves(server: ServerProcess) -> bool:
    result = server.etcdctl("endpoint", "health", "--command-timeout=1s", timeout=10)
    return result.returncode == 0


def get(server: ServerProcess, key: str) -> str:
    result = server.etcdctl("get", key, "--print-value-only")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_second_process_on_a_data_dir_in_use_waits_and_never_serves(tmp_path: Path) -> None:
    data_dir = tmp_path / "shared.etcd"
    first, second, third, restarted = (member("pyetcd", data_dir, log_name=f"{which}.log")
                                       for which in ("first", "second", "third", "restarted"))
    try:
        first.start()
        second.start(wait=False)
        third.start(wait=False)
        for index in range(20):
            assert first.etcdctl("put", f"/k/{index}", f"first-{index}").returncode == 0
        warning = [f'W | etcdserver: another etcd process is using "{data_dir}/member/snap/db" and holds the '
                   "file lock, or loading backend file is taking >10 seconds",
                   "W | etcdserver: waiting for it to exit before starting..."]
        deadline = time.monotonic() + STORE_LOCK_WARNING_S + 20
        while warning[0] not in log_lines(second) and time.monotonic() < deadline:
            assert second.process is not None and second.process.poll() is None, second.log_tail()
            assert not serves(second)
            time.sleep(0.5)
        lines = log_lines(second)
        assert warning[0] in lines, second.log_tail()
        assert lines[lines.index(warning[0]) + 1] == warning[1]
        assert not serves(second)
        assert second.process is not None and second.process.poll() is None

        # A waiting process stops on SIGTERM as a running one does, never having served.
        assert third.process is not None and third.process.poll() is None and not serves(third)
        assert third.stop() == -signal.SIGTERM
        assert "serving clients" not in third.log_path.read_text()

        # Once the first stops, the waiting process takes over the member and sees every write.
        assert first.stop() is not None
        second.wait_healthy()
        assert [get(second, f"/k/{index}") for index in range(20)] == [f"first-{index}" for index in range(20)]
        assert second.etcdctl("put", "/k/second", "after").returncode == 0
        second.stop()

        restarted.start()
        assert [get(restarted, f"/k/{index}") for index in range(20)] == [f"first-{index}" for index in range(20)]
        assert get(restarted, "/k/second") == "after"
        assert "CorruptLogError" not in restarted.log_path.read_text()
    finally:
        for server in (restarted, third, second, first):
            server.stop()


@pytest.mark.parametrize("binary", BINARIES)
def test_second_process_on_a_wal_dir_in_use_stops_at_once(binary: str, tmp_path: Path) -> None:
    wal_dir = tmp_path / "shared-wal"
    first = member(binary, tmp_path / "one.etcd", f"--wal-dir={wal_dir}")
    second = member(binary, tmp_path / "two.etcd", f"--wal-dir={wal_dir}")
    try:
        first.start()
        assert first.etcdctl("put", "k", "v").returncode == 0
        second.start(wait=False)
        assert second.process is not None
        assert second.process.wait(30) == 1
        assert log_lines(second)[-1] == "C | etcdserver: open wal error: fileutil: file already locked"
        assert get(first, "k") == "v"
    finally:
        second.stop()
        first.stop()


def modes_under(directory: Path) -> dict[str, set[str]]:
    """The permission bits of every directory and file under `directory`, by kind."""
    found: dict[str, set[str]] = {"dirs": set(), "files": set()}
    for root, dirs, files in os.walk(directory):
        for name in dirs:
            found["dirs"].add(oct(stat.S_IMODE(os.stat(Path(root, name)).st_mode)))
        for name in files:
            found["files"].add(oct(stat.S_IMODE(os.stat(Path(root, name)).st_mode)))
    return found


@pytest.mark.parametrize("binary", BINARIES)
def test_member_files_are_private_and_a_wider_data_dir_is_warned_about(binary: str, tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.etcd"
    wide = tmp_path / "wide.etcd"
    wide.mkdir(mode=0o755)
    wide.chmod(0o755)  # whatever the umask
    for data_dir in (fresh, wide):
        server = member(binary, data_dir)
        try:
            server.start()
            assert server.etcdctl("put", "k", "v").returncode == 0
        finally:
            assert server.stop() is not None
        assert modes_under(data_dir) == {"dirs": {"0o700"}, "files": {"0o600"}}
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
    assert stat.S_IMODE(wide.stat().st_mode) == 0o755  # etcd warns, and leaves the mode alone
    warning = (f'W | pkg/fileutil: check file permission: directory "{wide}" exist, but the permission is '
               '"drwxr-xr-x". The recommended permission is "-rwx------" to prevent possible unprivileged '
               "access to the data.")
    assert warning in log_lines(member(binary, wide))
    assert not [line for line in log_lines(member(binary, fresh)) if "check file permission" in line]


def test_snapshot_restore_refuses_a_data_dir_or_wal_dir_in_use_as_etcdctl_does(
        start_server: StartServer, tmp_path: Path) -> None:
    server = start_server("pyetcd")
    assert server.etcdctl("put", "k", "before").returncode == 0
    snapshot = tmp_path / "backup.db"
    assert server.etcdctl("snapshot", "save", str(snapshot)).returncode == 0
    wal_dir = tmp_path / "wal-in-use"
    wal_dir.mkdir()
    attempts = {
        "data-dir": ["--data-dir", str(server.data_dir)],
        "wal-dir": ["--data-dir", str(tmp_path / "new.etcd"), "--wal-dir", str(wal_dir)],
    }
    for flags in attempts.values():
        answers = []
        for command in (["etcdctl", "snapshot", "restore"], [str(PYETCD_BINARY), "snapshot", "restore"]):
            done = subprocess.run([*command, str(snapshot), *flags], capture_output=True, text=True, timeout=60,
                                  env={**os.environ, "ETCDCTL_API": "3"})
            answers.append((done.returncode, done.stderr.strip().splitlines()[-1:]))
        assert answers[0][0] == 1
        assert answers[1] == answers[0]
    assert not (tmp_path / "new.etcd").exists()
    assert get(server, "k") == "before"
    assert serves(server)

    # Into a new directory it works, and what it makes is private too.
    restored = tmp_path / "restored.etcd"
    done = subprocess.run([str(PYETCD_BINARY), "snapshot", "restore", str(snapshot), "--data-dir", str(restored)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert modes_under(restored) == {"dirs": {"0o700"}, "files": {"0o600"}}
    assert stat.S_IMODE(restored.stat().st_mode) == 0o700
