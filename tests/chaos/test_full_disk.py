"""A full disk: pyetcd raises NOSPACE before it runs out, keeps serving reads, and loses no acknowledged write.

The process tests mount a small tmpfs as the member's data dir (root only: skipped with the
reason otherwise) and drive pyetcd with the real etcdctl. A filler file on the same tmpfs
plays "someone else's data": deleting it is how the operator frees space. Real etcd is not
the control here: it preallocates 64 MB WAL segments, so on such a disk it panics at start
("create wal error: no space left on device").
The in-process tests pin down the last-resort path, a write that meets ENOSPC anyway.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import lmdb
import pytest

from etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from pyetcd import apply_kv
from pyetcd.diskspace import DiskSpaceGuard, free_bytes, reserve_bytes
from pyetcd.ids import member_id
from raft.core import Entry, HardState
from storage.mvcc import MvccStore
from storage.raftlog import DurableLog
from tests.helpers.servers import ServerProcess, free_port
from tests.server.test_process_quota import assert_alarm_raised_and_writes_refused, ok, refused_for_space

MiB = 1 << 20
VALUE_BYTES = 100_000
DEFAULT_RESERVE = reserve_bytes(1572864)  # pyetcd's default --max-request-bytes


def value_for(number: int) -> bytes:
    """A 100 kB value that says which put wrote it, so a lost or mixed-up write shows."""
    return f"{number:04d}".encode() * (VALUE_BYTES // 4)


# -- a small disk ----------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A fresh 12 MiB tmpfs, unmounted afterwards; skips the test where mounting is not allowed."""
    yield from _mounted_tmpfs(tmp_path / "disk", 12 * MiB)


def _mounted_tmpfs(where: Path, size: int) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs as the data dir needs root")
    where.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                           capture_output=True, text=True)
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip()}")
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


def write_filler(path: Path, size: int | None = None) -> int:
    """Write zeros to `path` (up to `size`, or until the disk is full); returns the bytes written."""
    chunk = b"\0" * (64 * 1024)
    written = 0
    with open(path, "wb", buffering=0) as f:
        while size is None or written < size:
            try:
                written += f.write(chunk if size is None else chunk[:size - written])
            except OSError as err:
                if err.errno != errno.ENOSPC or size is not None:
                    raise
                break
    return written


# -- talking to the member -------------------------------------------------------------------


def pyetcd_on(data_dir: Path) -> ServerProcess:
    """A one-member pyetcd whose data dir is `data_dir`, a mount point: its log goes beside it, off the disk."""
    return ServerProcess(binary="pyetcd", name="full", data_dir=data_dir,
                         client_port=free_port(), peer_port=free_port())


def nospace_alarm(server: ServerProcess) -> str:
    return f"memberID:{member_id([server.peer_url], 'etcd-cluster')} alarm:NOSPACE "


def stored_values(server: ServerProcess, *extra: str) -> dict[str, bytes]:
    """Every /fill/ key and value, read with `etcdctl get --prefix -w json` (plus `extra` flags)."""
    answer = json.loads(ok(server.etcdctl("get", "/fill/", "--prefix", "-w", "json", *extra))[0])
    return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv["value"])
            for kv in answer.get("kvs", [])}


def put_until_refused(server: ServerProcess, limit: int = 200) -> list[int]:
    """Put 100 kB values until one is refused; every answer must be OK or NOSPACE. Returns the acked ones."""
    acked: list[int] = []
    for number in range(limit):
        result = server.etcdctl("put", f"/fill/{number:04d}", input=value_for(number))
        if result.returncode != 0:
            assert refused_for_space(result), result.stderr
            return acked
        acked.append(number)
    raise AssertionError("the disk never ran short")


def alarms(server: ServerProcess) -> list[str] | None:
    """`etcdctl alarm list`, or None when the member does not answer."""
    result = server.etcdctl("alarm", "list", "--command-timeout=2s")
    return list(result.stdout.splitlines()) if result.returncode == 0 else None


def exited(server: ServerProcess) -> bool:
    return server.process is not None and server.process.poll() is not None


def wait_until(predicate: Any, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return bool(predicate())


# -- the process tests -----------------------------------------------------------------------


def test_a_filling_disk_raises_nospace_keeps_reads_and_every_acknowledged_write(small_disk: Path) -> None:
    filler = small_disk / "filler"
    write_filler(filler, 4 * MiB)
    server = pyetcd_on(small_disk)
    try:
        server.start()
        acked = put_until_refused(server)
        # Refused well before the disk was full: nothing ever met ENOSPC.
        assert free_bytes(str(small_disk)) > MiB
        assert "No space left on device" not in server.log_path.read_text()
        assert len(acked) >= 5
        alarm = nospace_alarm(server)
        # Writes are refused; reads of both kinds, deletes and compaction go on.
        assert_alarm_raised_and_writes_refused(server, alarm)
        expected = {f"/fill/{n:04d}": value_for(n) for n in acked}
        assert stored_values(server) == expected
        assert stored_values(server, "--consistency=s") == expected
        first = f"/fill/{acked[0]:04d}"
        assert ok(server.etcdctl("del", first)) == ["1"]
        del expected[first]
        revision = json.loads(ok(server.etcdctl("get", "/x", "-w", "json"))[0])["header"]["revision"]
        assert ok(server.etcdctl("compact", str(revision))) == [f"compacted revision {revision}"]

        # Disarmed while the disk is still short, the alarm comes straight back.
        assert ok(server.etcdctl("alarm", "disarm")) == [alarm]
        assert wait_until(lambda: ok(server.etcdctl("alarm", "list")) == [alarm])

        # A restart keeps every acknowledged write and the alarm.
        server.stop()
        server.start()
        assert stored_values(server) == expected
        assert ok(server.etcdctl("alarm", "list")) == [alarm]

        # The operator frees space and disarms: writes are accepted again, and the alarm stays off.
        filler.unlink()
        assert free_bytes(str(small_disk)) > DEFAULT_RESERVE
        assert ok(server.etcdctl("alarm", "disarm")) == [alarm]
        assert ok(server.etcdctl("put", "/small", "v")) == ["OK"]
        assert ok(server.etcdctl("lease", "grant", "60"))[0].endswith("granted with TTL(60s)")
        assert ok(server.etcdctl("alarm", "list")) == []
        assert ok(server.etcdctl("get", "/small", "--print-value-only")) == ["v"]
    finally:
        server.stop()


def test_a_disk_filled_at_once_by_someone_else_loses_no_acknowledged_write(small_disk: Path) -> None:
    server = pyetcd_on(small_disk)
    filler = small_disk / "filler"
    try:
        server.start()
        for number in range(5):
            assert ok(server.etcdctl("put", f"/fill/{number:04d}", input=value_for(number))) == ["OK"]
        with grpc.insecure_channel(server.endpoint) as channel:
            kv = rpc_pb2_grpc.KVStub(channel)
            kv.Range(rpc_pb2.RangeRequest(key=b"/fill/0000"), timeout=5)  # connected before the disk fills
            write_filler(filler)
            assert free_bytes(str(small_disk)) == 0
            # Sent at once, the put usually reaches the Raft log before the guard's next look at
            # the disk and meets ENOSPC there; otherwise the guard's alarm refuses it. Either way
            # it is not acknowledged.
            with pytest.raises(grpc.RpcError) as refused:
                kv.Put(rpc_pb2.PutRequest(key=b"/late", value=value_for(99) * 10), timeout=10)
        assert refused.value.code() in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE,
                                        grpc.StatusCode.DEADLINE_EXCEEDED), refused.value
        alarm = nospace_alarm(server)
        # The member either stopped, saying why, or is up with the alarm raised.
        assert wait_until(lambda: exited(server) or alarms(server) == [alarm])
        stopped = exited(server)
        if stopped:
            assert "failed to save raft hard state and entries: [Errno 28] No space left on device" \
                in server.log_path.read_text()

        filler.unlink()
        if stopped:
            server.start()
        assert stored_values(server) == {f"/fill/{n:04d}": value_for(n) for n in range(5)}
        if ok(server.etcdctl("alarm", "list")):
            assert ok(server.etcdctl("alarm", "disarm")) == [alarm]
        assert ok(server.etcdctl("put", "/after", "v")) == ["OK"]
    finally:
        server.stop()


# -- the last resort, in process -------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs for the in-process tests."""
    yield from _mounted_tmpfs(tmp_path / "tiny", 1 * MiB)


def test_the_raft_log_meeting_enospc_refuses_more_writes_and_reopens_with_what_it_saved(tiny_disk: Path) -> None:
    filler = tiny_disk / "filler"
    write_filler(filler, 256 * 1024)
    log = DurableLog.open(tiny_disk / "wal")
    saved = 0
    with pytest.raises(OSError) as full:
        for index in range(1, 1000):
            log.save(HardState(term=1, commit=index), [Entry(term=1, index=index, data=b"e" * 60_000)], None)
            saved = index
    assert full.value.errno == errno.ENOSPC
    assert saved > 0
    # Memory may not run ahead of the disk: after a failed save nothing more is written.
    with pytest.raises(OSError):
        log.save(HardState(term=1, commit=saved), [], None)
    assert log.last_index() == saved
    log.close()

    filler.unlink()
    reopened = DurableLog.open(tiny_disk / "wal")  # drops the torn tail the failed write left
    assert reopened.last_index() == saved
    assert reopened.hard_state == HardState(term=1, commit=saved)
    assert [e.data for e in reopened.entries(1, saved + 1)] == [b"e" * 60_000] * saved
    reopened.save(HardState(term=1, commit=saved + 1), [Entry(term=1, index=saved + 1, data=b"after")], None)
    reopened.close()
    assert DurableLog.open(tiny_disk / "wal").last_index() == saved + 1


def test_a_store_commit_meeting_a_full_disk_leaves_the_store_as_it_was(tiny_disk: Path) -> None:
    store = MvccStore(tiny_disk / "db", sync_commits=False)
    committed = 0
    with pytest.raises(lmdb.Error) as full:
        for index in range(1, 1000):
            with store.write(consistent_index=index, consistent_term=1) as batch:
                apply_kv.batch_put(batch, rpc_pb2.PutRequest(key=b"k%04d" % index, value=b"v" * 50_000))
            committed = index
    # LMDB reports the short page write as EIO, not ENOSPC.
    assert "Input/output error" in str(full.value) or "No space left" in str(full.value)
    assert committed > 0
    assert store.consistent_index == committed
    assert store.current_revision == committed + 1
    store.close()
    reopened = MvccStore(tiny_disk / "db", sync_commits=False)
    assert reopened.consistent_index == committed
    count = apply_kv.read_range(reopened, rpc_pb2.RangeRequest(key=b"k", range_end=b"l", count_only=True)).count
    assert count == committed
    reopened.close()


# -- the guard's decisions, with a pretend disk ----------------------------------------------


class PretendMember:
    """Free space and alarms the test sets by hand, and a record of what the guard did."""

    def __init__(self) -> None:
        self.free = 10 * MiB
        self.alarm_on = False
        self.proposals = 0
        self.raft_error: BaseException | None = None
        self.stop_reasons: list[str] = []

    async def raise_alarm(self) -> None:
        self.proposals += 1
        self.alarm_on = True

    def guard(self) -> DiskSpaceGuard:
        return DiskSpaceGuard(["/wal", "/db"], 4 * MiB, alarm_raised=lambda: self.alarm_on,
                              raise_alarm=self.raise_alarm, raft_failure=lambda: self.raft_error,
                              fail_member=self.stop_reasons.append,
                              measure=lambda path: self.free if path == "/db" else 100 * MiB)


def test_the_guard_raises_the_alarm_once_per_shortage_and_again_after_a_premature_disarm() -> None:
    async def scenario() -> list[int]:
        member = PretendMember()
        guard = member.guard()
        seen = []
        for free, disarm in [(10 * MiB, False), (3 * MiB, False), (2 * MiB, False), (2 * MiB, True),
                             (2 * MiB, False), (8 * MiB, True), (8 * MiB, False)]:
            member.free = free
            if disarm:
                member.alarm_on = False
            guard.check_space()
            await asyncio.sleep(0)  # let a proposal it started run
            seen.append(member.proposals)
        return seen

    # Nothing while there is room; one proposal when the store's disk runs short; none while the
    # alarm is on; one more after a disarm with the disk still short; none once space is freed.
    assert asyncio.run(scenario()) == [0, 1, 1, 2, 2, 2, 2]


def test_the_guard_stops_the_member_once_its_raft_log_could_not_be_written() -> None:
    async def scenario() -> list[str]:
        member = PretendMember()
        guard = member.guard()
        guard.interval_s = 0.01
        runner = asyncio.create_task(guard.run())
        await asyncio.sleep(0.05)
        assert not runner.done()
        member.raft_error = OSError(errno.ENOSPC, "No space left on device")
        await asyncio.wait_for(runner, 5)
        return member.stop_reasons

    assert asyncio.run(scenario()) == [
        "failed to save raft hard state and entries: [Errno 28] No space left on device"]
