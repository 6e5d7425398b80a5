"""A member's data directory as etcd keeps it: created private, and used by one process at a time.

etcd creates its directories 0700 and its files 0600 (fileutil.PrivateDirMode/PrivateFileMode) and
warns about an existing directory whose permissions differ. Its store file is flock'ed, so a second
etcd started on the same data dir waits (saying so after 10 s) and never serves while the first runs;
its WAL files are try-locked, so a second process on the same --wal-dir stops at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import stat
import time

from pyetcd.config import ServerConfig
from pyetcd.errors import StartupError

PRIVATE_DIR_MODE = 0o700
PRIVATE_UMASK = 0o077
"""The member's process creates nothing that group or others may read, whichever library writes the
file (LMDB's data and copies included): directories come out 0700 and files 0600, etcd's modes."""

STORE_LOCK_RETRY_S = 0.05  # bbolt polls its flock this often
STORE_LOCK_WARNING_S = 10.0  # etcdserver's openBackend warns once the store has taken this long
ERR_LOCKED = "fileutil: file already locked"

fileutil_log = logging.getLogger("pyetcd.pkg/fileutil")
etcdserver_log = logging.getLogger("pyetcd.etcdserver")


class RaftLogLockedError(StartupError):
    """Another process holds the Raft log directory: etcd's fatal "open wal error"."""

    package = "etcdserver"

    def __init__(self) -> None:
        super().__init__(f"open wal error: {ERR_LOCKED}")


def create_files_private() -> None:
    """Make every directory and file this process creates private (called by the `pyetcd` command)."""
    os.umask(PRIVATE_UMASK)


def go_quote(text: str) -> str:
    """A string as Go's %q prints it (close enough for paths)."""
    return json.dumps(text, ensure_ascii=False)


def go_file_mode(mode: int) -> str:
    """A mode as Go's os.FileMode prints it: type and special-bit letters, then rwx for each class."""
    device = stat.S_ISBLK(mode) or stat.S_ISCHR(mode)
    flags = [(stat.S_ISDIR(mode), "d"), (stat.S_ISLNK(mode), "L"), (device, "D"), (stat.S_ISFIFO(mode), "p"),
             (stat.S_ISSOCK(mode), "S"), (mode & stat.S_ISUID, "u"), (mode & stat.S_ISGID, "g"),
             (stat.S_ISCHR(mode), "c"), (mode & stat.S_ISVTX, "t")]
    letters = "".join(letter for is_set, letter in flags if is_set)
    bits = "".join(char if mode & (1 << (8 - i)) else "-" for i, char in enumerate("rwxrwxrwx"))
    return (letters or "-") + bits


def make_private_dirs(path: str) -> None:
    """Create `path` and any missing parents with mode 0700, as Go's os.MkdirAll(path, 0700) does."""
    missing = []
    current = os.path.abspath(path)
    while not os.path.isdir(current):
        missing.append(current)
        current = os.path.dirname(current)
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, PRIVATE_DIR_MODE)


def touch_dir_all(path: str) -> None:
    """etcd's fileutil.TouchDirAll: warn about an existing directory that is not 0700, else create it."""
    if os.path.exists(path):
        mode = os.stat(path).st_mode
        if stat.S_IMODE(mode) & 0o777 != PRIVATE_DIR_MODE:
            fileutil_log.warning(
                "check file permission: directory %s exist, but the permission is %s. The recommended "
                "permission is %s to prevent possible unprivileged access to the data.",
                go_quote(path), go_quote(go_file_mode(mode)), go_quote(go_file_mode(PRIVATE_DIR_MODE)))
        return
    make_private_dirs(path)


def prepare_member_dirs(config: ServerConfig) -> None:
    """The directories a member uses, in etcd's order: data dir, member/snap, member; then the store's
    and the Raft log's (created 0700 when missing; existing ones are only checked where etcd checks)."""
    touch_dir_all(config.data_dir)
    touch_dir_all(os.path.dirname(config.store_dir))
    touch_dir_all(config.member_dir)
    make_private_dirs(config.store_dir)
    make_private_dirs(config.raft_log_dir)


def _try_lock(path: str) -> int | None:
    """An fd holding an exclusive flock on `path` (a directory), or None if another holder has it."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


class MemberDirLocks:
    """Exclusive locks on the store's and the Raft log's directories, held while the member runs.

    flock locks belong to the open file, so the kernel drops them when the process dies: a crashed
    member never leaves a stale lock behind.
    """

    def __init__(self, store_dir: str, raft_log_dir: str) -> None:
        self.store_dir = store_dir
        self.raft_log_dir = raft_log_dir
        self._fds: list[int] = []

    async def acquire(self, stopped: asyncio.Event) -> bool:
        """Wait for the store's lock as etcd waits for its bbolt file's, then try the Raft log's.

        False if `stopped` is set while waiting; RaftLogLockedError if the log is held elsewhere.
        """
        started = time.monotonic()
        warned = False
        while (fd := _try_lock(self.store_dir)) is None:
            if not warned and time.monotonic() - started >= STORE_LOCK_WARNING_S:
                etcdserver_log.warning("another etcd process is using %s and holds the file lock, or loading "
                                       "backend file is taking >10 seconds", go_quote(self.store_dir))
                etcdserver_log.warning("waiting for it to exit before starting...")
                warned = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopped.wait(), STORE_LOCK_RETRY_S)
            if stopped.is_set():
                return False
        self._fds.append(fd)
        log_fd = _try_lock(self.raft_log_dir)
        if log_fd is None:
            self.release()
            raise RaftLogLockedError
        self._fds.append(log_fd)
        return True

    def release(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()
