"""The data dir helpers: Go's mode strings, private directories, and locks that exclude a second holder."""

from __future__ import annotations

import asyncio
import logging
import stat
from pathlib import Path

import pytest

from pyetcd.datadir import MemberDirLocks, RaftLogLockedError, go_file_mode, make_private_dirs, touch_dir_all


@pytest.mark.parametrize(("mode", "shown"), [
    (stat.S_IFDIR | 0o755, "drwxr-xr-x"),
    (0o700, "-rwx------"),  # how etcd prints PrivateDirMode itself
    (stat.S_IFREG | 0o600, "-rw-------"),
    (stat.S_IFDIR | stat.S_ISGID | 0o775, "dgrwxrwxr-x"),
    (stat.S_IFDIR | stat.S_ISVTX | 0o777, "dtrwxrwxrwx"),
])
def test_modes_print_as_go_prints_them(mode: int, shown: str) -> None:
    assert go_file_mode(mode) == shown


def test_missing_directories_and_their_parents_are_created_private(tmp_path: Path) -> None:
    make_private_dirs(str(tmp_path / "a" / "b" / "c"))
    for path in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700


def test_an_existing_wider_directory_is_warned_about_and_left_alone(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    wide, private = tmp_path / "wide", tmp_path / "private"
    wide.mkdir()
    wide.chmod(0o750)
    private.mkdir()
    private.chmod(0o700)
    with caplog.at_level(logging.WARNING, logger="pyetcd.pkg/fileutil"):
        touch_dir_all(str(wide))
        touch_dir_all(str(private))
    assert [record.getMessage() for record in caplog.records] == [
        f'check file permission: directory "{wide}" exist, but the permission is "drwxr-x---". The recommended '
        'permission is "-rwx------" to prevent possible unprivileged access to the data.']
    assert stat.S_IMODE(wide.stat().st_mode) == 0o750


async def test_a_second_holder_waits_for_the_store_and_is_refused_the_raft_log(tmp_path: Path) -> None:
    store, log = tmp_path / "db", tmp_path / "wal"
    store.mkdir()
    log.mkdir()
    first = MemberDirLocks(str(store), str(log))
    assert await first.acquire(asyncio.Event())
    waiting_stopped = asyncio.Event()
    waiter = asyncio.create_task(MemberDirLocks(str(store), str(tmp_path)).acquire(waiting_stopped))
    await asyncio.sleep(0.3)
    assert not waiter.done()  # the store is held: it waits
    waiting_stopped.set()
    assert await asyncio.wait_for(waiter, 5) is False

    other_store = tmp_path / "other-db"
    other_store.mkdir()
    with pytest.raises(RaftLogLockedError, match="open wal error: fileutil: file already locked"):
        await MemberDirLocks(str(other_store), str(log)).acquire(asyncio.Event())
    first.release()
    again = MemberDirLocks(str(store), str(log))
    assert await again.acquire(asyncio.Event())
    again.release()
