"""The same etcdctl session against a fresh real etcd and a fresh candidate gives the same output.

Both members are started with identical flags on identical ports, one after the other, so
even member and cluster IDs must agree. Only what is not deterministic is blanked out:
lease IDs (time-based), hashes and on-disk sizes, and the Raft index (etcd commits
internal entries of its own, such as the cluster version).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.servers import EtcdctlWatch, ServerProcess, error_lines, free_port

CANDIDATES = [
    # etcd against itself shows the session is deterministic once normalised.
    pytest.param("etcd", id="etcd-vs-etcd"),
    pytest.param("pyetcd", id="etcd-vs-pyetcd"),
]

# "ttl" is the remaining time in `lease timetolive`; "TTL" (granted) must match.
UNSTABLE_FIELDS = {"dbSize", "dbSizeInUse", "raftIndex", "raftAppliedIndex", "hash", "ttl"}


def _hide_leases(text: str, lease_ids: set[int]) -> str:
    for lease in lease_ids:
        text = text.replace(format(lease, "016x"), "<lease>").replace(format(lease, "x"), "<lease>")
    return text


def _normalise(value: Any, lease_ids: set[int]) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in UNSTABLE_FIELDS:
                out[key] = "<unstable>"
            elif key in ("ID", "id") and item in lease_ids:
                out[key] = "<lease>"
            else:
                out[key] = _normalise(item, lease_ids)
        return out
    if isinstance(value, list):
        return [_normalise(item, lease_ids) for item in value]
    return value


def _run_session(server: ServerProcess) -> list[Any]:
    """A fixed etcdctl session; returns one normalised record per command."""
    records: list[Any] = []
    lease_ids: set[int] = set()

    def run(*args: str, stdin: str | None = None) -> str:
        result = server.etcdctl(*args, input=stdin)
        text = result.stdout
        shown = [_hide_leases(arg, lease_ids) for arg in args]
        if args and "-w" in args:
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = text
            records.append([shown, result.returncode, _normalise(parsed, lease_ids),
                            error_lines(result.stderr)])
        else:
            records.append([shown, result.returncode, _hide_leases(text, lease_ids),
                            error_lines(result.stderr)])
        return text

    run("put", "a", "1", "-w", "json")
    run("put", "b", "2", "-w", "json")
    run("put", "a", "3", "--prev-kv", "-w", "json")
    run("get", "a", "-w", "json")
    run("get", "", "--from-key", "-w", "json")
    run("get", "a", "--rev=2", "-w", "json")
    run("del", "b", "--prev-kv", "-w", "json")
    run("txn", "-w", "json", stdin='value("a") = "3"\n\nput c 4\nget a\n\nput c 5\n\n')
    run("txn", "-w", "json", stdin='version("a") > "5"\n\nput d 1\n\ndel a\nget a\n\n')
    run("txn", stdin="\n" + "".join(f"put many{i} x\n" for i in range(129)) + "\n\n")
    run("get", "", "--prefix", "--keys-only")
    run("compact", "4")
    run("get", "a", "--rev=3")
    run("get", "a", "--rev=99")
    granted = run("lease", "grant", "100", "-w", "json")
    lease_ids.add(json.loads(granted)["ID"])
    records[-1][2] = _normalise(json.loads(granted), lease_ids)
    lease_hex = format(next(iter(lease_ids)), "x")
    run("put", "leased", "v", f"--lease={lease_hex}", "-w", "json")
    run("lease", "timetolive", lease_hex, "--keys", "-w", "json")
    run("lease", "revoke", lease_hex, "-w", "json")
    run("get", "leased", "-w", "json")
    run("lease", "revoke", lease_hex)
    run("member", "list", "-w", "json")
    run("endpoint", "status", "-w", "json")
    run("endpoint", "hashkv", "-w", "json")
    run("alarm", "list")
    with EtcdctlWatch(server.endpoint, "", "--prefix", "--rev=4", "--prev-kv") as watch:
        records.append(["watch --rev=4", watch.read_lines(24)])
    with EtcdctlWatch(server.endpoint, "a", "--rev=2") as watch:
        records.append(["watch --rev=2", watch.read_lines(1)])
    return records


@pytest.mark.parametrize("candidate", CANDIDATES)
def test_same_session_prints_the_same_on_etcd_and_candidate(candidate: str, tmp_path: Path) -> None:
    client_port, peer_port = free_port(), free_port()
    transcripts = []
    for index, binary in enumerate(["etcd", candidate]):
        server = ServerProcess(binary=binary, name="same", data_dir=tmp_path / f"run{index}.etcd",
                               client_port=client_port, peer_port=peer_port)
        try:
            server.start()
            transcripts.append(_run_session(server))
        finally:
            server.stop()
    expected, actual = transcripts
    for want, got in zip(expected, actual, strict=True):
        assert got == want
