"""Each way a request can fail auth gets etcd's exact gRPC error and changes nothing.

The same scenario, spoken over gRPC with the token in the `token` metadata as clients send
it, runs against a real etcd and against pyetcd; what each call answered (code and message,
or the value read) must be the same, and the refused writes must have left no trace. Then
with JWT tokens (RS256, keys made here): a token minted before a permission change is
refused with "revision of auth store is old", and a forged one as an invalid token.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from etcdpb.authpb import auth_pb2
from etcdpb.etcdserverpb import rpc_pb2
from tests.auth.clients import Client, outcome
from tests.helpers.servers import ServerProcess, free_port

Observation = tuple[str, Any]


def set_up(c: Client) -> str:
    """root, and alice with readwrite on the prefix a/; auth on. Returns root's token."""
    c.auth.UserAdd(rpc_pb2.AuthUserAddRequest(name="root", password="rootpw"))
    c.auth.UserGrantRole(rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root"))
    c.auth.UserAdd(rpc_pb2.AuthUserAddRequest(name="alice", password="alicepw"))
    c.auth.UserAdd(rpc_pb2.AuthUserAddRequest(name="cn-only", options=auth_pb2.UserAddOptions(no_password=True)))
    c.auth.RoleAdd(rpc_pb2.AuthRoleAddRequest(name="app"))
    c.auth.RoleGrantPermission(rpc_pb2.AuthRoleGrantPermissionRequest(
        name="app", perm=auth_pb2.Permission(permType=auth_pb2.Permission.READWRITE, key=b"a/", range_end=b"a0")))
    c.auth.UserGrantRole(rpc_pb2.AuthUserGrantRoleRequest(user="alice", role="app"))
    c.auth.AuthEnable(rpc_pb2.AuthEnableRequest())
    root = c.login("root", "rootpw")
    for key, value in ((b"secret", b"s0"), (b"a/1", b"v0")):
        c.kv.Put(rpc_pb2.PutRequest(key=key, value=value), metadata=[("token", root)])
    return root


def watch_create(c: Client, key: bytes, token: str) -> Any:
    requests = iter([rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=key))])
    stream = c.watch.Watch(requests, metadata=[("token", token)])
    try:
        first = next(stream)
        return (first.created, first.canceled, first.cancel_reason)
    finally:
        stream.cancel()


def refusal_scenario(c: Client) -> list[Observation]:
    root = set_up(c)
    seen: list[Observation] = []
    alice = c.login("alice", "alicepw")
    txn_outside = rpc_pb2.TxnRequest(
        compare=[rpc_pb2.Compare(key=b"a/1", target=rpc_pb2.Compare.VALUE, value=b"nope")],
        success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"a/2", value=b"x"))],
        failure=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"a/3", value=b"x")),
                 rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"secret", value=b"stolen"))])
    compare_outside = rpc_pb2.TxnRequest(
        compare=[rpc_pb2.Compare(key=b"secret", target=rpc_pb2.Compare.VALUE, value=b"s0")],
        success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"a/4", value=b"x"))])
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("put without credentials", lambda: c.kv.Put(rpc_pb2.PutRequest(key=b"secret", value=b"x"))),
        ("get without credentials", lambda: c.kv.Range(rpc_pb2.RangeRequest(key=b"a/1"))),
        ("wrong password", lambda: c.login("alice", "wrong")),
        ("unknown user", lambda: c.login("mallory", "pw")),
        ("password for a no-password user", lambda: c.login("cn-only", "pw")),
        ("alice reads her prefix", lambda: c.kv.Range(rpc_pb2.RangeRequest(key=b"a/1"), metadata=[("token", alice)])),
        ("alice reads outside it", lambda: c.kv.Range(rpc_pb2.RangeRequest(key=b"secret"),
                                                      metadata=[("token", alice)])),
        ("txn with one write outside", lambda: c.kv.Txn(txn_outside, metadata=[("token", alice)])),
        ("txn comparing outside", lambda: c.kv.Txn(compare_outside, metadata=[("token", alice)])),
        ("made-up token", lambda: c.kv.Range(rpc_pb2.RangeRequest(key=b"a/1"), metadata=[("token", "abc.1")])),
        ("watch outside", lambda: watch_create(c, b"secret", alice)),
        ("hash as non-root", lambda: c.maintenance.Hash(rpc_pb2.HashRequest(), metadata=[("token", alice)])),
    ]
    for name, call in steps:
        seen.append((name, outcome(call)))
    c.auth.RoleRevokePermission(rpc_pb2.AuthRoleRevokePermissionRequest(role="app", key=b"a/", range_end=b"a0"),
                                metadata=[("token", root)])
    seen.append(("read after the permission was revoked",
                 outcome(lambda: c.kv.Range(rpc_pb2.RangeRequest(key=b"a/1"), metadata=[("token", alice)]))))
    seen.append(("write after the permission was revoked",
                 outcome(lambda: c.kv.Put(rpc_pb2.PutRequest(key=b"a/1", value=b"late"), metadata=[("token", alice)]))))
    c.auth.UserChangePassword(rpc_pb2.AuthUserChangePasswordRequest(name="alice", password="new"),
                              metadata=[("token", root)])
    seen.append(("token of a user whose password changed",
                 outcome(lambda: c.kv.Range(rpc_pb2.RangeRequest(key=b"a/1"), metadata=[("token", alice)]))))
    seen.append(("what is stored", outcome(lambda: c.kv.Range(
        rpc_pb2.RangeRequest(key=b"\x00", range_end=b"\x00"), metadata=[("token", root)]))))
    return seen


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def start(binary: str, *extra_args: str) -> ServerProcess:
        server = ServerProcess(binary=binary, name="solo", data_dir=tmp_path / f"{binary}{len(started)}.etcd",
                               client_port=free_port(), peer_port=free_port(),
                               extra_args=("--bcrypt-cost=4", *extra_args))  # quick hashes on both
        started.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in started:
            server.stop()


def run_against(server: ServerProcess, scenario: Callable[[Client], list[Observation]]) -> list[Observation]:
    client = Client(server.endpoint)
    try:
        return scenario(client)
    finally:
        client.close()
        server.stop()


def test_refused_requests_get_etcds_errors_and_change_nothing(servers: Callable[..., ServerProcess]) -> None:
    expected = run_against(servers("etcd"), refusal_scenario)
    actual = run_against(servers("pyetcd"), refusal_scenario)
    assert actual == expected
    seen = dict(actual)
    assert seen["put without credentials"] == ("INVALID_ARGUMENT", "etcdserver: user name is empty")
    assert seen["wrong password"] == ("INVALID_ARGUMENT",
                                      "etcdserver: authentication failed, invalid user ID or password")
    assert seen["txn with one write outside"] == ("PERMISSION_DENIED", "etcdserver: permission denied")
    assert seen["made-up token"] == ("UNAUTHENTICATED", "etcdserver: invalid auth token")
    assert seen["read after the permission was revoked"] == ("PERMISSION_DENIED", "etcdserver: permission denied")
    assert seen["token of a user whose password changed"] == ("UNAUTHENTICATED", "etcdserver: invalid auth token")
    assert seen["hash as non-root"] == ("UNKNOWN", "auth: permission denied")
    assert seen["what is stored"] == ("ok", [(b"a/1", b"v0"), (b"secret", b"s0")])


def jwt_scenario(public_pem: bytes) -> Callable[[Client], list[Observation]]:
    def scenario(c: Client) -> list[Observation]:
        root = set_up(c)
        alice = c.login("alice", "alicepw")
        claims = jwt.decode(alice, public_pem, algorithms=["RS256"])
        seen: list[Observation] = [("claims", (claims["username"], sorted(claims)))]
        seen.append(("read with the token", outcome(lambda: c.get(b"a/1", alice))))
        c.auth.RoleGrantPermission(rpc_pb2.AuthRoleGrantPermissionRequest(
            name="app", perm=auth_pb2.Permission(permType=auth_pb2.Permission.READ, key=b"b")),
            metadata=[("token", root)])
        seen.append(("token minted before a permission change",
                     outcome(lambda: c.kv.Range(rpc_pb2.RangeRequest(key=b"a/1"), metadata=[("token", alice)]))))
        seen.append(("write with it", outcome(lambda: c.kv.Put(rpc_pb2.PutRequest(key=b"a/1", value=b"x"),
                                                               metadata=[("token", alice)]))))
        fresh = c.login("alice", "alicepw")
        seen.append(("a new token", outcome(lambda: c.get(b"a/1", fresh))))
        other_key = rsa.generate_private_key(65537, 2048)
        forged = jwt.encode({"username": "root", "revision": claims["revision"] + 5, "exp": claims["exp"]},
                            other_key, algorithm="RS256")
        seen.append(("forged token", outcome(lambda: c.get(b"secret", forged))))
        return seen

    return scenario


def test_jwt_tokens_carry_the_auth_revision_and_are_verified(
        servers: Callable[..., ServerProcess], tmp_path: Path) -> None:
    key = rsa.generate_private_key(65537, 2048)
    private, public = tmp_path / "jwt.key", tmp_path / "jwt.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    public.write_bytes(public_pem)
    flag = f"--auth-token=jwt,pub-key={public},priv-key={private},sign-method=RS256,ttl=10m"
    expected = run_against(servers("etcd", flag), jwt_scenario(public_pem))
    actual = run_against(servers("pyetcd", flag), jwt_scenario(public_pem))
    assert actual == expected
    seen = dict(actual)
    assert seen["claims"] == ("alice", ["exp", "revision", "username"])
    assert seen["token minted before a permission change"] == ("INVALID_ARGUMENT",
                                                               "etcdserver: revision of auth store is old")
    assert seen["a new token"] == ("ok", [b"v0"])
    assert seen["forged token"] == ("UNAUTHENTICATED", "etcdserver: invalid auth token")
