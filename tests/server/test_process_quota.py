"""--quota-backend-bytes: the NOSPACE alarm, as etcd raises, reports and clears it.

Run against real etcd and pyetcd with the same small quota: writes past it are refused
with "database space exceeded", the alarm is listed and shown by `endpoint status`,
reads and deletes keep working, and compact + defrag + `alarm disarm` let writes in again.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from pyetcd.ids import member_id
from tests.helpers.servers import ServerProcess, StartServer, error_lines

NO_SPACE = "etcdserver: mvcc: database space exceeded"
QUOTA_BYTES = 2_000_000
VALUE = b"x" * 100_000

BINARIES = [pytest.param("etcd", id="etcd"),
            pytest.param("pyetcd", id="pyetcd")]


def refused_for_space(result: Any, what: str = "{}") -> bool:
    return bool(result.returncode != 0 and "Error: " + what.format(NO_SPACE) in error_lines(result.stderr))


def ok(result: Any) -> list[str]:
    assert result.returncode == 0, result.stderr
    return list(result.stdout.splitlines())


def assert_alarm_raised_and_writes_refused(server: ServerProcess, alarm: str) -> None:
    """The alarm shows in `alarm list` and `endpoint status`; a put, a writing txn and a lease grant fail."""
    assert ok(server.etcdctl("alarm", "list")) == [alarm]
    [status] = json.loads(ok(server.etcdctl("endpoint", "status", "-w", "json"))[0])
    assert status["Status"]["errors"] == [alarm]
    assert refused_for_space(server.etcdctl("put", "/small", "v"))
    assert refused_for_space(server.etcdctl("txn", input="\nput /small v\n\n\n"))
    assert refused_for_space(server.etcdctl("lease", "grant", "60"), "failed to grant lease ({})")


def fill_until_refused(server: ServerProcess) -> int:
    """Put 100 kB values until the quota refuses one; returns how many were accepted."""
    for number in range(3 * QUOTA_BYTES // len(VALUE)):
        result = server.etcdctl("put", f"/fill/{number:03d}", input=VALUE)
        if result.returncode != 0:
            assert refused_for_space(result), result.stderr
            return number
    raise AssertionError("the quota never refused a write")


@pytest.mark.parametrize("binary", BINARIES)
def test_writes_past_the_quota_raise_nospace_until_compact_defrag_and_disarm(
        binary: str, start_server: StartServer) -> None:
    server = start_server(binary, name="quota", extra_args=[f"--quota-backend-bytes={QUOTA_BYTES}"])
    accepted = fill_until_refused(server)
    # Roughly the quota's worth of values went in (page and free-list overhead vary; etcd's
    # own count changes from run to run).
    assert 0.75 * QUOTA_BYTES <= accepted * len(VALUE) <= 1.25 * QUOTA_BYTES

    # Under the alarm even a tiny write, a txn that writes, and a lease grant are refused.
    alarm = f"memberID:{member_id([server.peer_url], 'etcd-cluster')} alarm:NOSPACE "
    assert_alarm_raised_and_writes_refused(server, alarm)
    # Reads, read-only txns and deletes still work.
    assert ok(server.etcdctl("get", "/fill/000", "--keys-only")) == ["/fill/000", ""]
    assert ok(server.etcdctl("txn", input="\nget /fill/001 --keys-only\n\n\n")) == ["SUCCESS", "", "/fill/001", ""]
    # etcd checks the quota again when it applies a put, and answers NOSPACE for one it applied
    # anyway (quotaApplierV3), so the refused put may be stored too; pyetcd checks once, before the log.
    stored = {accepted, accepted + 1} if binary == "etcd" else {accepted}
    assert int(ok(server.etcdctl("del", "/fill/", "--prefix"))[0]) in stored

    # Freeing space is not enough: the alarm stays until disarmed.
    revision = json.loads(ok(server.etcdctl("get", "/x", "-w", "json"))[0])["header"]["revision"]
    assert ok(server.etcdctl("compact", str(revision))) == [f"compacted revision {revision}"]
    assert ok(server.etcdctl("defrag")) == [f"Finished defragmenting etcd member[{server.endpoint}]"]
    assert refused_for_space(server.etcdctl("put", "/small", "v"))
    assert ok(server.etcdctl("alarm", "disarm")) == [alarm]
    assert ok(server.etcdctl("alarm", "list")) == []
    [status] = json.loads(ok(server.etcdctl("endpoint", "status", "-w", "json"))[0])
    assert "errors" not in status["Status"]
    assert ok(server.etcdctl("put", "/small", "v")) == ["OK"]
    assert ok(server.etcdctl("lease", "grant", "60"))[0].endswith("granted with TTL(60s)")


@pytest.mark.parametrize("binary", BINARIES)
def test_the_nospace_alarm_survives_a_restart(binary: str, start_server: StartServer) -> None:
    server = start_server(binary, name="quota2", extra_args=[f"--quota-backend-bytes={QUOTA_BYTES}"])
    fill_until_refused(server)
    server.stop()
    server.start()
    alarm = f"memberID:{member_id([server.peer_url], 'etcd-cluster')} alarm:NOSPACE "
    assert ok(server.etcdctl("alarm", "list")) == [alarm]
    assert refused_for_space(server.etcdctl("put", "/small", "v"))
