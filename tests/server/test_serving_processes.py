"""A member with --serving-processes 2: the API answers as with one process, a killed serving process is
started again while the member keeps serving, and a killed core leaves no serving process behind.

`make test-serving` runs the etcdctl and API comparison tests in this mode too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pyetcd.serving import wire
from tests.helpers.servers import PYETCD_BINARY, EtcdctlWatch, ServerProcess, StartServer, error_lines

SERVING = ("--serving-processes=2",)


def serving_pids(core_pid: int) -> list[int]:
    """The serving processes whose core is `core_pid`, found by their command line."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "pyetcd.serving" in command and f'"core_pid": {core_pid},' in command:
            pids.append(int(entry.name))
    return sorted(pids)


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def member(start_module_server: StartServer) -> Iterator[ServerProcess]:
    yield start_module_server("pyetcd", extra_args=SERVING)


def test_the_member_starts_two_serving_processes(member: ServerProcess) -> None:
    assert member.process is not None
    assert len(serving_pids(member.process.pid)) == 2


def test_kv_txn_and_etcd_errors_answer_as_one_process(member: ServerProcess) -> None:
    assert member.etcdctl("put", "sv/a", "1").stdout.strip() == "OK"
    assert member.etcdctl("get", "sv/a").stdout.split() == ["sv/a", "1"]
    txn = member.etcdctl("txn", input='value("sv/a") = "1"\n\nput sv/a 2\n\nput sv/a 3\n\n')
    assert txn.stdout.split() == ["SUCCESS", "OK"], txn.stderr
    assert member.etcdctl("get", "sv/a", "--print-value-only").stdout.strip() == "2"
    empty = member.etcdctl("put", "", "x")
    assert empty.returncode != 0
    assert error_lines(empty.stderr) == ["Error: etcdserver: key is not provided"]
    future = member.etcdctl("get", "sv/a", "--rev=100000")
    assert error_lines(future.stderr) == ["Error: etcdserver: mvcc: required revision is a future revision"]


def test_watch_and_lease_keep_alive_are_forwarded(member: ServerProcess) -> None:
    with EtcdctlWatch(member.endpoint, "sv/w") as watch:
        time.sleep(0.5)  # the watch is created before the put
        member.etcdctl("put", "sv/w", "seen")
        assert watch.read_lines(3) == ["PUT", "sv/w", "seen"]
    granted = member.etcdctl("lease", "grant", "60").stdout.split()
    lease = granted[1]
    kept = member.etcdctl("lease", "keep-alive", "--once", lease)
    assert kept.stdout.strip() == f"lease {lease} keepalived with TTL(60)", kept.stderr
    missing = member.etcdctl("lease", "revoke", "1234")
    assert error_lines(missing.stderr) == ["Error: failed to revoke lease (etcdserver: requested lease not found)"]


def test_auth_tokens_reach_the_core_for_batched_and_forwarded_calls(member: ServerProcess) -> None:
    for args in (("user", "add", "root:rootpw"), ("role", "add", "root"), ("user", "grant-role", "root", "root"),
                 ("auth", "enable")):
        assert member.etcdctl(*args).returncode == 0
    try:
        assert member.etcdctl("--user=root:rootpw", "put", "sv/auth", "v").stdout.strip() == "OK"
        assert member.etcdctl("--user=root:rootpw", "get", "sv/auth", "--print-value-only").stdout.strip() == "v"
        anonymous = member.etcdctl("get", "sv/auth")
        assert error_lines(anonymous.stderr) == ["Error: etcdserver: user name is empty"]
        wrong = member.etcdctl("--user=root:nope", "get", "sv/auth")
        assert error_lines(wrong.stderr) == [
            "Error: etcdserver: authentication failed, invalid user ID or password"]
        assert member.etcdctl("--user=root:rootpw", "user", "list").stdout.split() == ["root"]
    finally:
        assert member.etcdctl("--user=root:rootpw", "auth", "disable").returncode == 0


def test_a_killed_serving_process_is_started_again_and_nothing_acknowledged_is_lost(member: ServerProcess) -> None:
    assert member.process is not None
    core = member.process.pid
    before = serving_pids(core)
    os.kill(before[0], signal.SIGKILL)
    acknowledged = [f"sv/r{i}" for i in range(10) if member.etcdctl("put", f"sv/r{i}", "v").returncode == 0]
    assert len(acknowledged) == 10  # the client port sent new connections to the surviving process
    wait_for(lambda: len(serving_pids(core)) == 2 and before[0] not in serving_pids(core))
    keys = member.etcdctl("get", "sv/r", "--prefix", "--keys-only").stdout.split()
    assert keys == sorted(acknowledged)


def test_a_killed_core_takes_its_serving_processes_with_it(start_server: StartServer) -> None:
    server = start_server("pyetcd", extra_args=SERVING)
    assert server.process is not None
    core = server.process.pid
    assert len(serving_pids(core)) == 2
    server.kill()
    wait_for(lambda: not serving_pids(core), timeout=10)


def test_a_stopped_member_stops_its_serving_processes_cleanly(start_server: StartServer) -> None:
    server = start_server("pyetcd", extra_args=SERVING)
    assert server.process is not None
    core = server.process.pid
    assert server.etcdctl("put", "sv/s", "1").returncode == 0
    assert server.stop() == -signal.SIGTERM
    assert not serving_pids(core)
    log = server.log_path.read_text()
    assert "serving process 1 answered" in log and "serving process 2 answered" in log
    assert "Traceback" not in log


@pytest.mark.parametrize(("flags", "message"), [
    (["--serving-processes=0"], "--serving-processes must be between 1 and 64 (set to 0)"),
    (["--serving-processes=2", "--client-cert-auth"],
     "--serving-processes above 1 cannot be combined with --client-cert-auth"),
])
def test_bad_serving_process_counts_are_refused(tmp_path: Path, flags: list[str], message: str) -> None:
    result = subprocess.run([PYETCD_BINARY, f"--data-dir={tmp_path / 'd'}", *flags], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 1
    assert f"error verifying flags, {message}. See 'pyetcd --help'." in result.stderr


def test_batch_frames_round_trip() -> None:
    calls = [wire.Call(1, b"\x0a\x01k", "tok"), wire.Call(0, b"", None), wire.Call(3, b"x" * 70000, "")]
    batch_id, decoded = wire.decode_calls(wire.encode_calls(7, calls)[4:])
    assert (batch_id, decoded) == (7, calls)
    answers = [(0, b"ok"), (3, b"etcdserver: key is not provided")]
    assert wire.decode_answers(wire.encode_answers(9, answers)[4:]) == (9, answers)
