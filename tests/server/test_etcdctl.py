"""What etcdctl prints against a one-member server: the same for real etcd and for pyetcd.

Every test runs against both binaries (see conftest.py). The servers are shared by the
module, so each test writes under its own key prefix and reads revisions it produced.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

from pyetcd.ids import cluster_id, member_id
from tests.helpers.servers import EtcdctlWatch, ServerProcess, error_lines

ONE_AND_A_HALF_MIB = 1536 * 1024
COMPACTED = "etcdserver: mvcc: required revision has been compacted"
LEASE_NOT_FOUND = "etcdserver: requested lease not found"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def as_json(result: Any) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def ok(result: Any) -> list[str]:
    """stdout lines of a command that must succeed."""
    assert result.returncode == 0, f"rc={result.returncode}: {result.stderr}"
    return list(result.stdout.splitlines())


def fails_with(result: Any, message: str) -> None:
    assert result.returncode != 0
    assert f"Error: {message}" in error_lines(result.stderr), result.stderr


def revision(server: ServerProcess) -> int:
    return int(as_json(server.etcdctl("get", "/no-such-key", "-w", "json"))["header"]["revision"])


def put_all(server: ServerProcess, pairs: dict[str, str]) -> int:
    """Put each pair in order; returns the revision of the last put."""
    last = 0
    for key, value in pairs.items():
        last = as_json(server.etcdctl("put", key, value, "-w", "json"))["header"]["revision"]
    return int(last)


# --- put / get ---

def test_put_then_get_shows_the_write_revision_in_header_and_kv(server: ServerProcess) -> None:
    put = as_json(server.etcdctl("put", "/basic/a", "1", "-w", "json"))
    rev = put["header"]["revision"]
    got = as_json(server.etcdctl("get", "/basic/a", "-w", "json"))
    assert got["header"]["revision"] == rev
    assert got["header"]["cluster_id"] == put["header"]["cluster_id"] != 0
    assert got["header"]["member_id"] == put["header"]["member_id"] != 0
    assert got["header"]["raft_term"] >= 1
    assert got["count"] == 1
    assert got["kvs"] == [{"key": b64("/basic/a"), "create_revision": rev, "mod_revision": rev,
                           "version": 1, "value": b64("1")}]


def test_overwriting_a_key_bumps_version_and_keeps_create_revision(server: ServerProcess) -> None:
    first = put_all(server, {"/version/k": "1"})
    second = put_all(server, {"/version/k": "2"})
    kv = as_json(server.etcdctl("get", "/version/k", "-w", "json"))["kvs"][0]
    assert (kv["create_revision"], kv["mod_revision"], kv["version"]) == (first, second, 2)
    assert ok(server.etcdctl("put", "/version/k", "3", "--prev-kv")) == ["OK", "/version/k", "2"]


def test_get_prefix_limit_sort_keys_only_and_print_value_only(server: ServerProcess) -> None:
    put_all(server, {"/opts/b": "2", "/opts/a": "1", "/opts/d": "4", "/opts/c": "3",
                     "/opts0": "x", "/opt": "y"})
    assert ok(server.etcdctl("get", "/opts/", "--prefix")) == [
        "/opts/a", "1", "/opts/b", "2", "/opts/c", "3", "/opts/d", "4"]
    assert ok(server.etcdctl("get", "/opts/", "--prefix", "--limit=2")) == ["/opts/a", "1", "/opts/b", "2"]
    assert ok(server.etcdctl("get", "/opts/", "--prefix", "--sort-by=KEY", "--order=DESCEND")) == [
        "/opts/d", "4", "/opts/c", "3", "/opts/b", "2", "/opts/a", "1"]
    # The most recently created key first.
    assert ok(server.etcdctl("get", "/opts/", "--prefix", "--sort-by=CREATE", "--order=DESCEND",
                             "--limit=1")) == ["/opts/c", "3"]
    assert ok(server.etcdctl("get", "/opts/", "--prefix", "--keys-only")) == [
        "/opts/a", "", "/opts/b", "", "/opts/c", "", "/opts/d", ""]
    assert ok(server.etcdctl("get", "/opts/", "--prefix", "--print-value-only")) == ["1", "2", "3", "4"]
    assert ok(server.etcdctl("get", "/opts/b", "--from-key", "--limit=3")) == [
        "/opts/b", "2", "/opts/c", "3", "/opts/d", "4"]
    # An explicit range end: [/opts/a, /opts/c).
    assert ok(server.etcdctl("get", "/opts/a", "/opts/c")) == ["/opts/a", "1", "/opts/b", "2"]


def test_get_json_counts_every_match_even_past_the_limit(server: ServerProcess) -> None:
    put_all(server, {"/count/1": "a", "/count/2": "b", "/count/3": "c"})
    answer = as_json(server.etcdctl("get", "/count/", "--prefix", "--limit=1", "-w", "json"))
    assert answer["count"] == 3
    assert answer["more"] is True
    assert [kv["key"] for kv in answer["kvs"]] == [b64("/count/1")]
    keys_only = as_json(server.etcdctl("get", "/count/", "--prefix", "--keys-only", "-w", "json"))
    assert all("value" not in kv for kv in keys_only["kvs"])


def test_get_at_an_older_revision_sees_the_value_then(server: ServerProcess) -> None:
    old = put_all(server, {"/rev/k": "old"})
    put_all(server, {"/rev/k": "new"})
    assert ok(server.etcdctl("get", "/rev/k", f"--rev={old}")) == ["/rev/k", "old"]
    assert ok(server.etcdctl("get", "/rev/k")) == ["/rev/k", "new"]
    assert ok(server.etcdctl("get", "/rev/k", f"--rev={old - 1}")) == []


def test_get_at_a_future_revision_fails(server: ServerProcess) -> None:
    fails_with(server.etcdctl("get", "/future", f"--rev={revision(server) + 1000}"),
               "etcdserver: mvcc: required revision is a future revision")


# --- del ---

def test_del_prefix_with_prev_kv_prints_count_and_deleted_pairs(server: ServerProcess) -> None:
    put_all(server, {"/del/a": "1", "/del/b": "2", "/del/c": "3", "/del0": "kept"})
    assert ok(server.etcdctl("del", "/del/", "--prefix", "--prev-kv")) == [
        "3", "/del/a", "1", "/del/b", "2", "/del/c", "3"]
    assert ok(server.etcdctl("get", "/del", "--prefix")) == ["/del0", "kept"]
    assert ok(server.etcdctl("del", "/del/missing")) == ["0"]


def test_deleting_nothing_leaves_the_revision_alone(server: ServerProcess) -> None:
    before = revision(server)
    assert ok(server.etcdctl("del", "/nothing/here", "--prefix")) == ["0"]
    assert revision(server) == before


# --- txn ---

def test_txn_runs_the_success_branch_when_compares_hold(server: ServerProcess) -> None:
    put_all(server, {"/txn/flag": "on"})
    script = 'value("/txn/flag") = "on"\n\nput /txn/result yes\nget /txn/flag\n\nput /txn/result no\n\n'
    assert ok(server.etcdctl("txn", input=script)) == ["SUCCESS", "", "OK", "", "/txn/flag", "on"]
    assert ok(server.etcdctl("get", "/txn/result", "--print-value-only")) == ["yes"]


def test_txn_runs_the_failure_branch_when_a_compare_fails(server: ServerProcess) -> None:
    put_all(server, {"/txn2/flag": "off"})
    script = ('value("/txn2/flag") = "on"\nmod("/txn2/flag") > "0"\n\n'
              "put /txn2/result yes\n\nput /txn2/result no\n\n")
    answer = as_json(server.etcdctl("txn", "-w", "json", input=script))
    assert "succeeded" not in answer  # etcdctl's JSON leaves out false fields
    assert ok(server.etcdctl("get", "/txn2/result", "--print-value-only")) == ["no"]


def test_txn_writes_share_one_revision(server: ServerProcess) -> None:
    before = revision(server)
    script = "\nput /txn3/a 1\nput /txn3/b 2\ndel /txn3/none\n\n\n"
    answer = as_json(server.etcdctl("txn", "-w", "json", input=script))
    assert answer["succeeded"] is True
    assert answer["header"]["revision"] == before + 1
    got = as_json(server.etcdctl("get", "/txn3/", "--prefix", "-w", "json"))
    assert {kv["mod_revision"] for kv in got["kvs"]} == {before + 1}


def test_txn_that_puts_a_key_twice_is_refused(server: ServerProcess) -> None:
    script = "\nput /dup/k 1\nput /dup/k 2\n\n\n"
    fails_with(server.etcdctl("txn", input=script), "etcdserver: duplicate key given in txn request")
    script = "\nput /dup/a/k 1\ndel /dup/a/ /dup/b\n\n\n"
    fails_with(server.etcdctl("txn", input=script), "etcdserver: duplicate key given in txn request")


def test_txn_with_more_than_128_operations_is_refused(server: ServerProcess) -> None:
    puts = "".join(f"put /many/{i} x\n" for i in range(129))
    fails_with(server.etcdctl("txn", input=f"\n{puts}\n\n"), "etcdserver: too many operations in txn request")
    assert ok(server.etcdctl("get", "/many/", "--prefix", "--keys-only")) == []


# --- compaction ---

def test_compaction_makes_older_revisions_unreadable(server: ServerProcess) -> None:
    old = put_all(server, {"/compact/k": "1"})
    current = put_all(server, {"/compact/k": "2"})
    assert ok(server.etcdctl("compact", str(current))) == [f"compacted revision {current}"]
    fails_with(server.etcdctl("get", "/compact/k", f"--rev={old}"), COMPACTED)
    assert ok(server.etcdctl("get", "/compact/k", f"--rev={current}")) == ["/compact/k", "2"]
    fails_with(server.etcdctl("compact", str(old)), COMPACTED)
    with EtcdctlWatch(server.endpoint, "/compact/k", f"--rev={old}") as watch:
        assert watch.read_lines(1) == [f"watch was canceled ({COMPACTED})"]


# --- watch ---

def test_watch_from_a_revision_replays_history_with_prev_kv(server: ServerProcess) -> None:
    start = put_all(server, {"/watch/a": "1"})
    put_all(server, {"/watch/b": "2", "/watch/a": "3"})
    assert ok(server.etcdctl("del", "/watch/b")) == ["1"]
    with EtcdctlWatch(server.endpoint, "/watch/", "--prefix", f"--rev={start}", "--prev-kv") as watch:
        assert watch.read_lines(16) == [
            "PUT", "/watch/a", "1",
            "PUT", "/watch/b", "2",
            "PUT", "/watch/a", "1", "/watch/a", "3",
            "DELETE", "/watch/b", "2", "/watch/b", "",
        ]


def test_watch_sees_new_writes_on_its_prefix_only(server: ServerProcess) -> None:
    start = revision(server) + 1  # replaying from here closes the race with the watch starting up
    with EtcdctlWatch(server.endpoint, "/live/", "--prefix", f"--rev={start}") as watch:
        put_all(server, {"/live/a": "1", "/elsewhere": "x", "/live/b": "2"})
        assert watch.read_lines(6) == ["PUT", "/live/a", "1", "PUT", "/live/b", "2"]
        assert ok(server.etcdctl("del", "/live/", "--prefix")) == ["2"]
        assert watch.read_lines(6) == ["DELETE", "/live/a", "", "DELETE", "/live/b", ""]


def test_watch_of_one_key_ignores_keys_that_share_its_prefix(server: ServerProcess) -> None:
    start = revision(server) + 1
    with EtcdctlWatch(server.endpoint, "/single", f"--rev={start}") as watch:
        put_all(server, {"/single/child": "no", "/singlex": "no", "/single": "yes"})
        assert watch.read_lines(3) == ["PUT", "/single", "yes"]


# --- leases ---

LEASE_GRANTED = re.compile(r"^lease ([0-9a-f]+) granted with TTL\((\d+)s\)$")


def grant(server: ServerProcess, ttl: int) -> tuple[str, int]:
    lines = ok(server.etcdctl("lease", "grant", str(ttl)))
    match = LEASE_GRANTED.match(lines[0])
    assert match, lines
    return match.group(1), int(match.group(2))


def test_lease_keeps_keys_until_revoked(server: ServerProcess) -> None:
    lease, ttl = grant(server, 60)
    assert ttl == 60
    assert ok(server.etcdctl("put", "/lease/k1", "v", f"--lease={lease}")) == ["OK"]
    assert ok(server.etcdctl("put", "/lease/k2", "v", f"--lease={lease}")) == ["OK"]
    [line] = ok(server.etcdctl("lease", "timetolive", lease, "--keys"))
    match = re.match(rf"^lease {lease} granted with TTL\(60s\), remaining\((\d+)s\), "
                     r"attached keys\(\[(.*)\]\)$", line)
    assert match, line
    assert 0 < int(match.group(1)) <= 60
    assert sorted(match.group(2).split(" ")) == ["/lease/k1", "/lease/k2"]
    assert lease in ok(server.etcdctl("lease", "list"))
    assert ok(server.etcdctl("lease", "keep-alive", "--once", lease)) == [
        f"lease {lease} keepalived with TTL(60)"]
    attached = as_json(server.etcdctl("get", "/lease/k1", "-w", "json"))["kvs"][0]
    assert attached["lease"] == int(lease, 16)  # etcdctl prints lease IDs zero-padded to 16 digits
    assert ok(server.etcdctl("lease", "revoke", lease)) == [f"lease {lease} revoked"]
    assert ok(server.etcdctl("get", "/lease/", "--prefix")) == []
    assert ok(server.etcdctl("lease", "timetolive", lease)) == [f"lease {lease} already expired"]
    assert lease not in ok(server.etcdctl("lease", "list"))


def test_short_lease_gets_the_minimum_ttl_and_expires_with_its_keys(server: ServerProcess) -> None:
    lease, ttl = grant(server, 1)
    assert ttl == 2  # ceil(1.5 election timeouts of 1 s)
    assert ok(server.etcdctl("put", "/expiring/k", "v", f"--lease={lease}")) == ["OK"]
    with EtcdctlWatch(server.endpoint, "/expiring/k", f"--rev={revision(server)}") as watch:
        assert watch.read_lines(6, timeout=20) == ["PUT", "/expiring/k", "v", "DELETE", "/expiring/k", ""]
    assert ok(server.etcdctl("lease", "timetolive", lease)) == [f"lease {lease} already expired"]


def test_unknown_lease_is_reported_by_every_lease_command(server: ServerProcess) -> None:
    fails_with(server.etcdctl("put", "/nolease/k", "v", "--lease=1234"), LEASE_NOT_FOUND)
    fails_with(server.etcdctl("lease", "revoke", "1234"), f"failed to revoke lease ({LEASE_NOT_FOUND})")
    fails_with(server.etcdctl("lease", "keep-alive", "--once", "1234"), LEASE_NOT_FOUND)
    assert ok(server.etcdctl("lease", "timetolive", "1234")) == ["lease 0000000000001234 already expired"]


# --- limits ---

def test_request_over_max_request_bytes_is_refused(server: ServerProcess) -> None:
    value = b"a" * (ONE_AND_A_HALF_MIB + 100 * 1024)
    fails_with(server.etcdctl("put", "/big/mid", input=value), "etcdserver: request is too large")
    huge = server.etcdctl("put", "/big/huge", input=b"a" * (2 * 1024 * 1024))
    assert huge.returncode != 0
    assert "larger than max" in huge.stderr.lower()
    assert ok(server.etcdctl("get", "/big/", "--prefix", "--keys-only")) == []


# --- maintenance and cluster ---

def test_endpoint_status_json_describes_the_member(server: ServerProcess) -> None:
    [entry] = as_json(server.etcdctl("endpoint", "status", "-w", "json"))
    assert entry["Endpoint"] == server.endpoint
    status = entry["Status"]
    header = status["header"]
    assert header["member_id"] == status["leader"] == member_id([server.peer_url], "etcd-cluster")
    assert header["cluster_id"] == cluster_id([header["member_id"]])
    assert header["revision"] == revision(server)
    assert header["raft_term"] == status["raftTerm"] >= 1
    assert status["version"].startswith("3.4.")
    assert status["dbSize"] >= status["dbSizeInUse"] > 0
    assert status["raftIndex"] >= status["raftAppliedIndex"] > 0
    assert "errors" not in status


def test_endpoint_hashkv_is_stable_while_nothing_changes(server: ServerProcess) -> None:
    [first] = as_json(server.etcdctl("endpoint", "hashkv", "-w", "json"))
    [second] = as_json(server.etcdctl("endpoint", "hashkv", "-w", "json"))
    assert first["Endpoint"] == server.endpoint
    assert first["HashKV"]["hash"] == second["HashKV"]["hash"]
    assert first["HashKV"]["header"]["revision"] == revision(server)
    put_all(server, {"/hash/k": "v"})
    [third] = as_json(server.etcdctl("endpoint", "hashkv", "-w", "json"))
    assert third["HashKV"]["hash"] != first["HashKV"]["hash"]


def test_member_list_shows_the_ids_etcd_derives_from_the_flags(server: ServerProcess) -> None:
    expected_id = member_id([server.peer_url], "etcd-cluster")
    listed = as_json(server.etcdctl("member", "list", "-w", "json"))
    assert listed["header"]["cluster_id"] == cluster_id([expected_id])
    assert "revision" not in listed["header"]
    assert listed["members"] == [{"ID": expected_id, "name": server.name, "peerURLs": [server.peer_url],
                                  "clientURLs": [server.client_url]}]
    table = ok(server.etcdctl("member", "list", "-w", "table"))
    cells = [[cell.strip() for cell in line.split("|")[1:-1]] for line in table if line.startswith("|")]
    assert cells == [
        ["ID", "STATUS", "NAME", "PEER ADDRS", "CLIENT ADDRS", "IS LEARNER"],
        [format(expected_id, "x"), "started", server.name, server.peer_url, server.client_url, "false"],
    ]


def test_alarm_list_is_empty_and_defrag_succeeds(server: ServerProcess) -> None:
    assert ok(server.etcdctl("alarm", "list")) == []
    assert ok(server.etcdctl("defrag")) == [f"Finished defragmenting etcd member[{server.endpoint}]"]
    put_all(server, {"/after-defrag/k": "v"})
    assert ok(server.etcdctl("get", "/after-defrag/k", "--print-value-only")) == ["v"]


def test_snapshot_save_writes_the_file(server: ServerProcess, tmp_path: Path) -> None:
    path = tmp_path / "snapshot.db"
    assert ok(server.etcdctl("snapshot", "save", str(path))) == [f"Snapshot saved at {path}"]
    assert path.stat().st_size > 0
