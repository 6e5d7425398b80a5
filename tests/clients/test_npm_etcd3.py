"""The npm `etcd3` client (1.1.2; ETCD Manager is built on it), run by node against pyetcd and a real etcd.

Each scenario of node/scenario.js runs once against each server; pyetcd must give the client exactly what
etcd gives it, including the error classes the client picks from etcd's messages.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.clients.side_by_side import Command, node_binary, run_side_by_side
from tests.helpers.servers import HOST, ServerProcess

PREFIX = "/npm"

# What etcd answers in each scenario, in part: proof that the scenario exercised what it names.
ETCD_SAYS: dict[str, dict[str, Any]] = {
    "kv": {"get": "1b", "missing": None, "exists": [True, False], "delete": 1, "delete_again": 0, "after": 0,
           "prefix": {f"{PREFIX}-kv/a": "1b", f"{PREFIX}-kv/b": "2", f"{PREFIX}-kv/start": "0"}},
    "txn": {"duplicate": {"error": "GRPCInvalidArgumentError",
                          "message": "3 INVALID_ARGUMENT: etcdserver: duplicate key given in txn request"}},
    "watch": {"live": [["put", f"{PREFIX}-watch/w/1", "a", 1, 1, 1], ["put", f"{PREFIX}-watch/w/1", "b", 1, 2, 2],
                       ["delete", f"{PREFIX}-watch/w/1", "", 0, 3, 0]]},
    "lease": {"keepalive": [True, 60], "after_revoke": [None, True, -1], "short_granted": 2,
              "expired": [False, -1],
              "revoke_again": {"error": "EtcdLeaseInvalidError", "message":
                               "Lease 5 NOT_FOUND: etcdserver: requested lease not found is expired or revoked"}},
    "lock": {"held": [1, True], "second": "EtcdLockFailedError", "after_release": 0, "third": True},
    "cluster": {"version": "3.4.23", "leader_is_member": True, "alarms": 0,
                "members": [{"name": "n1", "peerURLs": [f"http://{HOST}:PEER-PORT"],
                             "clientURLs": [f"http://{HOST}:CLIENT-PORT"]}]},
}


def drive(scenario: str, prefix: str | None = None) -> Command:
    def command(server: ServerProcess) -> list[str]:
        return [node_binary(), "node/scenario.js", scenario, server.endpoint, prefix or f"{PREFIX}-{scenario}"]
    return command


@pytest.mark.parametrize("scenario", sorted(ETCD_SAYS))
def test_scenario_as_etcd(scenario: str, servers: dict[str, ServerProcess]) -> None:
    seen = run_side_by_side(drive(scenario), servers)
    for field, expected in ETCD_SAYS[scenario].items():
        assert seen["etcd"][field] == expected, field
    assert seen["pyetcd"] == seen["etcd"]


AUTH_ETCD_SAYS: dict[str, Any] = {
    "users": ["alice", "npm-bob", "root"], "roles": ["npm-writer", "reader", "root"], "bob_own": "by bob",
    "bob_write_outside": {"error": "EtcdPermissionDeniedError",
                          "message": "7 PERMISSION_DENIED: etcdserver: permission denied"},
    "after_revoke": {"error": "EtcdPermissionDeniedError",
                     "message": "7 PERMISSION_DENIED: etcdserver: permission denied"},
    "wrong_password": {"error": "EtcdAuthenticationFailedError", "message":
                       "3 INVALID_ARGUMENT: etcdserver: authentication failed, invalid user ID or password"},
    "users_after": ["alice", "root"],
}


def test_auth_as_etcd(auth_servers: dict[str, ServerProcess]) -> None:
    """Users and roles through the client's API as root, then a user's grants and refusals."""
    seen = run_side_by_side(drive("auth", prefix="/auth/npm"), auth_servers)
    for field, expected in AUTH_ETCD_SAYS.items():
        assert seen["etcd"][field] == expected, field
    assert seen["pyetcd"] == seen["etcd"]
