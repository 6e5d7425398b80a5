"""etcdctl's user, role and auth commands print the same against pyetcd as against a real etcd.

The same session runs against a fresh etcd and a fresh pyetcd, one member each and then three
members each with a leader change in the middle; every command's exit code, output and error
line must match. The sessions include the refusals: no credentials, a wrong password, a key
outside the user's permission, a txn that touches one such key, a permission revoked between
two commands, and root's protected user and role.
"""

from __future__ import annotations

from pathlib import Path

from tests.auth.clients import Client, outcome
from tests.cluster.cluster import Cluster, wait_until
from tests.helpers.servers import ServerProcess, error_lines, free_port, run_etcdctl

FAST_HASHES = ("--bcrypt-cost=4",)  # bcrypt's cheapest cost, for etcd and pyetcd alike: keeps the sessions quick
ROOT = "--user=root:rootpw"
ALICE = "--user=alice:alicepw"

Record = tuple[tuple[str, ...], int, str, list[str]]


class Session:
    """Runs etcdctl commands against one endpoint list and keeps what each printed."""

    def __init__(self, endpoints: str) -> None:
        self.endpoints = endpoints
        self.records: list[Record] = []

    def __call__(self, *args: str, stdin: str | None = None, endpoints: str | None = None) -> str:
        result = run_etcdctl(endpoints or self.endpoints, *args, input=stdin)
        self.records.append((args, result.returncode, result.stdout, error_lines(result.stderr)))
        return result.stdout


def set_up_users_and_roles(ctl: Session) -> None:
    ctl("auth", "enable")  # no root user yet
    ctl("user", "add", "root:rootpw")
    ctl("user", "add", "alice:alicepw")
    ctl("user", "add", "--no-password", "cn-only")
    ctl("role", "add", "reader")
    ctl("role", "add", "reader")  # already there
    ctl("role", "grant-permission", "reader", "read", "/app/", "--prefix")
    ctl("role", "grant-permission", "reader", "readwrite", "own")
    ctl("role", "grant-permission", "reader", "read", "x/", "--from-key")
    ctl("user", "grant-role", "alice", "reader")
    ctl("user", "grant-role", "alice", "nosuchrole")
    ctl("role", "get", "reader")
    ctl("user", "get", "alice")
    ctl("user", "list")
    ctl("role", "list")
    ctl("auth", "enable")  # etcdctl adds the root role and grants it to root, then enables
    ctl(ROOT, "user", "get", "root")
    ctl(ROOT, "role", "list")


def checks_under_auth(ctl: Session) -> None:
    ctl("put", "/app/config", "v1")  # no credentials
    ctl(ROOT, "put", "/app/config", "v1")
    ctl(ROOT, "put", "secret", "s1")
    ctl(ALICE, "get", "/app/config")
    ctl(ALICE, "get", "/app/", "--prefix")
    ctl(ALICE, "get", "x/z")
    ctl(ALICE, "put", "own", "mine")
    ctl(ALICE, "get", "secret")
    ctl(ALICE, "put", "/app/config", "v2")
    ctl("--user=alice:wrong", "get", "/app/config")
    ctl("--user=nobody:pw", "get", "/app/config")
    ctl("--user=cn-only:pw", "get", "/app/config")
    # A txn whose compare and first op are allowed but whose failure branch writes a forbidden key.
    ctl(ALICE, "txn", stdin='value("own") = "mine"\n\nget /app/config\n\nput secret stolen\n\n')
    ctl(ALICE, "txn", stdin='value("own") = "other"\n\nget /app/config\n\nput secret stolen\n\n')
    ctl(ROOT, "get", "secret")
    ctl(ALICE, "user", "get", "alice")
    ctl(ALICE, "user", "get", "root")
    ctl(ALICE, "role", "get", "reader")
    ctl(ALICE, "role", "get", "root")
    ctl(ALICE, "user", "list")
    ctl(ALICE, "auth", "disable")
    ctl(ALICE, "member", "add", "m9", "--peer-urls=http://127.0.0.1:1")
    ctl(ROOT, "user", "delete", "root")
    ctl(ROOT, "user", "revoke-role", "root", "root")
    ctl(ROOT, "role", "delete", "root")
    ctl("--user=root", "--password=rootpw", "get", "secret")
    ctl(ROOT, "user", "get", "alice", "--detail")


def revoke_and_disable(ctl: Session, admin_endpoint: str | None = None) -> None:
    ctl(ROOT, "role", "revoke-permission", "reader", "/app/", "--prefix", endpoints=admin_endpoint)
    ctl(ROOT, "role", "revoke-permission", "reader", "/app/", "--prefix", endpoints=admin_endpoint)
    ctl(ALICE, "get", "/app/config")
    ctl(ROOT, "user", "passwd", "alice", "--interactive=false", stdin="newpw\n", endpoints=admin_endpoint)
    ctl(ALICE, "get", "own")
    ctl("--user=alice:newpw", "get", "own")
    ctl(ROOT, "user", "revoke-role", "alice", "reader", endpoints=admin_endpoint)
    ctl("--user=alice:newpw", "get", "own")
    ctl(ROOT, "auth", "disable", endpoints=admin_endpoint)
    ctl("get", "secret")
    ctl("role", "delete", "reader")
    ctl("user", "delete", "alice")
    ctl("user", "list")
    ctl("role", "list")


def single_member_session(binary: str, base: Path) -> list[Record]:
    server = ServerProcess(binary=binary, name="solo", data_dir=base / f"{binary}.etcd",
                           client_port=free_port(), peer_port=free_port(), extra_args=FAST_HASHES)
    try:
        server.start()
        ctl = Session(server.endpoint)
        set_up_users_and_roles(ctl)
        checks_under_auth(ctl)
        server.stop()  # users, roles, permissions and the enabled flag are durable
        server.start(wait=False)
        # `endpoint health` reads a key, so with auth on it needs a user.
        assert wait_until(lambda: run_etcdctl(server.endpoint, ROOT, "endpoint", "health").returncode == 0)
        ctl(ALICE, "get", "/app/config")
        revoke_and_disable(ctl)
        return ctl.records
    finally:
        server.stop()


def test_one_member_auth_session_prints_what_etcd_prints(tmp_path: Path) -> None:
    expected = single_member_session("etcd", tmp_path)
    actual = single_member_session("pyetcd", tmp_path)
    for want, got in zip(expected, actual, strict=True):
        assert got == want
    # The session did refuse what it should, so matching etcd is not matching an empty answer.
    refusals = {args: errors for args, _, _, errors in actual}
    assert refusals[("put", "/app/config", "v1")] == ["Error: etcdserver: user name is empty"]
    assert refusals[(ALICE, "get", "secret")] == ["Error: etcdserver: permission denied"]
    assert refusals[("--user=alice:wrong", "get", "/app/config")] == [
        "Error: etcdserver: authentication failed, invalid user ID or password"]
    assert refusals[(ROOT, "user", "delete", "root")] == ["Error: etcdserver: invalid auth management"]
    assert refusals[("auth", "enable")] == []  # the second one; the first said root does not exist
    assert actual[0][3] == ["Error: etcdserver: root user does not exist"]
    assert [out for args, _, out, _ in actual if args == (ROOT, "get", "secret")] == ["secret\ns1\n"]


def cluster_session(binary: str, base: Path) -> list[Record]:
    cluster = Cluster(base / binary, binary=binary, extra_args=FAST_HASHES)
    try:
        cluster.start(3)
        first = cluster.running()[0]
        ctl = Session(first.endpoint)
        ctl("user", "add", "root:rootpw")
        ctl("user", "add", "alice:alicepw")
        ctl("role", "add", "reader")
        ctl("role", "grant-permission", "reader", "read", "/app/", "--prefix")
        ctl("role", "grant-permission", "reader", "readwrite", "own")
        ctl("user", "grant-role", "alice", "reader")
        ctl("auth", "enable")
        ctl(ROOT, "put", "/app/config", "v1")
        before = cluster.leader()
        target = next(m for m in cluster.running() if m is not before)
        moved = run_etcdctl(before.endpoint, ROOT, "move-leader", format(cluster.member_id(target), "x"))
        assert moved.returncode == 0, moved.stderr
        assert wait_until(lambda: cluster.leader_id() == cluster.member_id(target))
        for member in cluster.running():  # every member decides the same, leader or not
            ctl(ALICE, "get", "/app/config", endpoints=member.endpoint)
            ctl(ALICE, "put", "/app/config", "v2", endpoints=member.endpoint)
            ctl("get", "/app/config", endpoints=member.endpoint)
        ctl.records.append(token_from_one_member_on_all(cluster))
        revoke_and_disable(ctl, admin_endpoint=cluster.running()[2].endpoint)
        return ctl.records
    finally:
        cluster.stop()


def token_from_one_member_on_all(cluster: Cluster) -> Record:
    """A simple token handed out by one member is known to all: each applied the Authenticate entry."""
    first = Client(cluster.running()[0].endpoint)
    try:
        token = first.login("alice", "alicepw")
    finally:
        first.close()
    answers = []
    for member in cluster.running():
        client = Client(member.endpoint)
        try:
            answers.append(str(outcome(lambda: client.get(b"/app/config", token))))  # noqa: B023
        finally:
            client.close()
    return (("<token from the first member, used on each>",), 0, "\n".join(answers), [])


def test_three_member_auth_with_a_leader_change_prints_what_etcd_prints(tmp_path: Path) -> None:
    expected = cluster_session("etcd", tmp_path)
    actual = cluster_session("pyetcd", tmp_path)
    for want, got in zip(expected, actual, strict=True):
        assert got == want
    denied = [errors for args, _, _, errors in actual if args == (ALICE, "put", "/app/config", "v2")]
    assert denied == [["Error: etcdserver: permission denied"]] * 3
    shared = next(out for args, _, out, _ in actual if args == ("<token from the first member, used on each>",))
    assert shared.splitlines() == ["('ok', [b'v1'])"] * 3
