"""aetcd (PyPI `aetcd` 1.0.0), the asyncio client, against pyetcd and a real etcd.

Each scenario of drive_aetcd.py runs once against each server; pyetcd must give the client exactly
what etcd gives it, down to revisions, lease TTLs and the errors the client maps etcd's codes to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.clients.side_by_side import Command, assert_same_snapshots, client_python, run_side_by_side
from tests.helpers.servers import HOST, ServerProcess

PREFIX = "/aetcd"

# What etcd answers in each scenario, in part: proof that the scenario exercised what it names, so
# that two equal outputs cannot be two equal failures.
ETCD_SAYS: dict[str, dict[str, Any]] = {
    "kv": {"put_prev": [f"{PREFIX}-kv/a", "1", 1, 1, 1], "missing": None, "replace": [True, False],
           "delete_prefix": [2, [f"{PREFIX}-kv/b", f"{PREFIX}-kv/start"]], "after": 0},
    "txn": {"duplicate": {"error": "InvalidArgumentError", "code": "INVALID_ARGUMENT",
                          "message": "etcdserver: duplicate key given in txn request"}},
    "watch": {"once_timeout": "WatchTimeoutError", "compacted": ["RevisionCompactedError", 5],
              "once_filtered": ["PUT", f"{PREFIX}-watch/w/1", "a", 1, 1, 1]},
    "lease": {"granted": 60, "refresh": [True, 60], "short_granted": 2, "expired": [None, -1],
              "after_revoke": [None, -1], "duplicate_id": {"error": "DuplicateLeaseError", "message": ""},
              "revoke_again": {"error": "ClientError", "code": "NOT_FOUND",
                               "message": "etcdserver: requested lease not found"}},
    "lock": {"acquire": True, "held": True, "second_waits": False, "release": [True, False],
             "second_after": [True, True], "context": True, "context_after": False},
    "cluster": {"members": [{"name": "n1", "peer_urls": [f"http://{HOST}:PEER-PORT"],
                             "client_urls": [f"http://{HOST}:CLIENT-PORT"]}]},
}


def drive(scenario: str, *args: str) -> Command:
    def command(server: ServerProcess) -> list[str]:
        return [client_python("aetcd"), "drive_aetcd.py", scenario, HOST, str(server.client_port),
                f"{PREFIX}-{scenario}", *(arg.format(binary=server.binary) for arg in args)]
    return command


@pytest.mark.parametrize("scenario", sorted(ETCD_SAYS))
def test_scenario_as_etcd(scenario: str, servers: dict[str, ServerProcess]) -> None:
    seen = run_side_by_side(drive(scenario), servers)
    for field, expected in ETCD_SAYS[scenario].items():
        assert seen["etcd"][field] == expected, field
    assert seen["pyetcd"] == seen["etcd"]


def test_snapshot_is_etcds_format(fresh_servers: dict[str, ServerProcess], tmp_path: Path) -> None:
    """await Client.snapshot() saves a file the real etcdctl reads, holding what etcd's own would."""
    seen = run_side_by_side(drive("snapshot", str(tmp_path / "{binary}.db")), fresh_servers)
    assert seen["pyetcd"] == seen["etcd"]
    assert_same_snapshots(tmp_path / "etcd.db", tmp_path / "pyetcd.db")


AUTH_ETCD_SAYS = {
    "read": "v1", "root": ["by root", 1],
    "write": {"error": "ClientError", "code": "PERMISSION_DENIED", "message": "etcdserver: permission denied"},
    "wrong_password": {"error": "InvalidArgumentError", "code": "INVALID_ARGUMENT",
                       "message": "etcdserver: authentication failed, invalid user ID or password"},
    "anonymous": {"error": "InvalidArgumentError", "code": "INVALID_ARGUMENT",
                  "message": "etcdserver: user name is empty"},
}


def test_auth_as_etcd(auth_servers: dict[str, ServerProcess]) -> None:
    """Connections with a user and password; etcd's refusals become the same aetcd exceptions."""
    seen = run_side_by_side(drive("auth"), auth_servers)
    for field, expected in AUTH_ETCD_SAYS.items():
        assert seen["etcd"][field] == expected, field
    assert seen["pyetcd"] == seen["etcd"]
