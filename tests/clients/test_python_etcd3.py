"""python-etcd3 (PyPI `etcd3` 0.12.0), the most used Python client, against pyetcd and a real etcd.

Each scenario of drive_etcd3.py runs once against each server; pyetcd must give the client exactly
what etcd gives it, down to revisions, lease TTLs and the errors the client maps etcd's codes to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.clients.side_by_side import Command, assert_same_snapshots, client_python, run_side_by_side
from tests.helpers.servers import HOST, ServerProcess

# What etcd answers in each scenario, in part: proof that the scenario exercised what it names, so
# that two equal outputs cannot be two equal failures.
ETCD_SAYS: dict[str, dict[str, Any]] = {
    "kv": {"put_prev": "1", "if_not_exists": [False, True], "replace": [True, False], "delete": [True, False],
           "after": []},
    "txn": {"duplicate": {"error": "_InactiveRpcError", "code": "INVALID_ARGUMENT",
                          "details": "etcdserver: duplicate key given in txn request"}},
    "watch": {"once_timeout": "WatchTimedOut", "compacted": [["RevisionCompactedError", 5]]},
    "lease": {"granted": 60, "refresh": [1, True, 60], "short_granted": 2, "expired": [None, -1],
              "after_revoke": [[None, None], -1],
              "duplicate_id": {"error": "PreconditionFailedError", "code": "FAILED_PRECONDITION",
                               "details": "etcdserver: lease already exists"},
              "revoke_again": {"error": "_InactiveRpcError", "code": "NOT_FOUND",
                               "details": "etcdserver: requested lease not found"}},
    "lock": {"acquire": True, "held": True, "second_waits": False, "release": [True, False],
             "second_after": [True, True], "context": True, "context_after": False},
    "cluster": {"members": [{"name": "n1", "peer_urls": [f"http://{HOST}:PEER-PORT"],
                             "client_urls": [f"http://{HOST}:CLIENT-PORT"]}]},
}


def drive(scenario: str, *args: str) -> Command:
    def command(server: ServerProcess) -> list[str]:
        return [client_python("etcd3"), "drive_etcd3.py", scenario, HOST, str(server.client_port),
                f"/etcd3-{scenario}", *(arg.format(binary=server.binary) for arg in args)]
    return command


@pytest.mark.parametrize("scenario", sorted(ETCD_SAYS))
def test_scenario_as_etcd(scenario: str, servers: dict[str, ServerProcess]) -> None:
    seen = run_side_by_side(drive(scenario), servers)
    for field, expected in ETCD_SAYS[scenario].items():
        assert seen["etcd"][field] == expected, field
    assert seen["pyetcd"] == seen["etcd"]


def test_snapshot_is_etcds_format(fresh_servers: dict[str, ServerProcess], tmp_path: Path) -> None:
    """Client.snapshot() saves a file the real etcdctl reads, holding what etcd's own would."""
    seen = run_side_by_side(drive("snapshot", str(tmp_path / "{binary}.db")), fresh_servers)
    assert seen["pyetcd"] == seen["etcd"]
    assert_same_snapshots(tmp_path / "etcd.db", tmp_path / "pyetcd.db")
