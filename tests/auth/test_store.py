"""The auth store: etcd's rules for users, roles and root, its revision, and its state kept in LMDB."""

from __future__ import annotations

from pathlib import Path

import pytest

from etcdpb.authpb import auth_pb2
from etcdpb.etcdserverpb import rpc_pb2
from pyetcd import errors
from pyetcd.auth.passwords import hash_password, password_matches
from pyetcd.auth.store import AuthStore
from pyetcd.auth.tokens import AuthInfo, SimpleTokens
from storage.mvcc import MvccStore

LOW_COST = 4  # bcrypt's cheapest cost keeps these tests fast


class Member:
    """An auth store over a real MVCC store, applying each change as its own entry."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.kv = MvccStore(path)
        self.auth = AuthStore(SimpleTokens())
        self.auth.load(self.kv)
        self.index = 0

    def apply(self, method: str, *args: object) -> object:
        self.index += 1
        with self.kv.write(consistent_index=self.index) as w:
            return getattr(self.auth, method)(w, *args)

    def reopen(self) -> AuthStore:
        self.kv.close()
        self.kv = MvccStore(self.path)
        reloaded = AuthStore(SimpleTokens())
        reloaded.load(self.kv)
        return reloaded


@pytest.fixture
def member(tmp_path: Path) -> Member:
    m = Member(tmp_path / "db")
    yield m
    m.kv.close()


def add_user(m: Member, name: str, password: str = "pw", no_password: bool = False) -> None:
    m.apply("apply_user_add", rpc_pb2.AuthUserAddRequest(
        name=name, hashedPassword="" if no_password else hash_password(password, LOW_COST),
        options=auth_pb2.UserAddOptions(no_password=no_password)))


def grant(m: Member, role: str, kind: int, key: bytes, range_end: bytes = b"") -> None:
    m.apply("apply_role_grant_permission", rpc_pb2.AuthRoleGrantPermissionRequest(
        name=role, perm=auth_pb2.Permission(permType=kind, key=key, range_end=range_end)))  # type: ignore[arg-type]


def enable_with_root(m: Member) -> None:
    add_user(m, "root", "rootpw")
    m.apply("apply_user_grant_role", rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root"))
    m.apply("apply_auth_enable")


def test_enable_needs_a_root_user_with_the_root_role(member: Member) -> None:
    with pytest.raises(errors.EtcdError) as no_root:
        member.apply("apply_auth_enable")
    assert no_root.value == errors.ErrGRPCRootUserNotExist
    add_user(member, "root")
    with pytest.raises(errors.EtcdError) as no_role:
        member.apply("apply_auth_enable")
    assert no_role.value == errors.ErrGRPCRootRoleNotExist
    assert not member.auth.enabled
    member.apply("apply_user_grant_role", rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root"))
    member.apply("apply_auth_enable")
    assert member.auth.enabled


def test_root_cannot_be_deleted_or_lose_its_role_while_auth_is_on(member: Member) -> None:
    member.apply("apply_role_add", rpc_pb2.AuthRoleAddRequest(name="root"))
    enable_with_root(member)
    revision = member.auth.revision
    for method, request in [("apply_user_delete", rpc_pb2.AuthUserDeleteRequest(name="root")),
                            ("apply_user_revoke_role", rpc_pb2.AuthUserRevokeRoleRequest(name="root", role="root")),
                            ("apply_role_delete", rpc_pb2.AuthRoleDeleteRequest(role="root"))]:
        with pytest.raises(errors.EtcdError) as refused:
            member.apply(method, request)
        assert refused.value == errors.ErrGRPCInvalidAuthMgmt
    assert member.auth.revision == revision and "root" in member.auth.users["root"].roles


def test_users_and_roles_errors_are_etcds(member: Member) -> None:
    add_user(member, "u")
    cases = [
        ("apply_user_add", rpc_pb2.AuthUserAddRequest(name="u"), errors.ErrGRPCUserAlreadyExist),
        ("apply_user_add", rpc_pb2.AuthUserAddRequest(name=""), errors.ErrGRPCUserEmpty),
        ("apply_role_add", rpc_pb2.AuthRoleAddRequest(name=""), errors.ErrGRPCRoleEmpty),
        ("apply_user_grant_role", rpc_pb2.AuthUserGrantRoleRequest(user="u", role="nope"), errors.ErrGRPCRoleNotFound),
        ("apply_user_grant_role", rpc_pb2.AuthUserGrantRoleRequest(user="x", role="r"), errors.ErrGRPCUserNotFound),
        ("apply_user_revoke_role", rpc_pb2.AuthUserRevokeRoleRequest(name="u", role="r"), errors.ErrGRPCRoleNotGranted),
        ("apply_role_revoke_permission", rpc_pb2.AuthRoleRevokePermissionRequest(role="r", key=b"k"),
         errors.ErrGRPCRoleNotFound),
    ]
    for method, request, expected in cases:
        with pytest.raises(errors.EtcdError) as refused:
            member.apply(method, request)
        assert refused.value == expected, method
    member.apply("apply_role_add", rpc_pb2.AuthRoleAddRequest(name="r"))
    with pytest.raises(errors.EtcdError) as not_granted:
        member.apply("apply_role_revoke_permission", rpc_pb2.AuthRoleRevokePermissionRequest(role="r", key=b"k"))
    assert not_granted.value == errors.ErrGRPCPermissionNotGranted


def test_permission_checks_follow_roles_and_the_auth_revision(member: Member) -> None:
    member.apply("apply_role_add", rpc_pb2.AuthRoleAddRequest(name="reader"))
    grant(member, "reader", auth_pb2.Permission.READ, b"app/", b"app0")
    add_user(member, "u")
    member.apply("apply_user_grant_role", rpc_pb2.AuthUserGrantRoleRequest(user="u", role="reader"))
    member.auth.is_put_permitted(None, b"anything")  # auth off: everything is allowed
    enable_with_root(member)
    current = AuthInfo("u", member.auth.revision)
    member.auth.is_range_permitted(current, b"app/x", b"")
    member.auth.is_range_permitted(current, b"app/", b"app0")
    expectations = [
        (lambda: member.auth.is_put_permitted(current, b"app/x"), errors.ErrGRPCPermissionDenied),
        (lambda: member.auth.is_range_permitted(current, b"other", b""), errors.ErrGRPCPermissionDenied),
        (lambda: member.auth.is_range_permitted(None, b"app/x", b""), errors.ErrGRPCUserEmpty),
        (lambda: member.auth.is_admin_permitted(current), errors.ErrGRPCPermissionDenied),
        (lambda: member.auth.is_admin_permitted(AuthInfo("ghost", 9)), errors.ErrGRPCUserNotFound),
    ]
    for check, expected in expectations:
        with pytest.raises(errors.EtcdError) as refused:
            check()
        assert refused.value == expected
    member.auth.is_admin_permitted(AuthInfo("root", member.auth.revision))
    member.apply("apply_role_revoke_permission",
                 rpc_pb2.AuthRoleRevokePermissionRequest(role="reader", key=b"app/", range_end=b"app0"))
    with pytest.raises(errors.EtcdError) as stale:
        member.auth.is_range_permitted(current, b"app/x", b"")
    assert stale.value == errors.ErrGRPCAuthOldRevision
    with pytest.raises(errors.EtcdError) as revoked:
        member.auth.is_range_permitted(AuthInfo("u", member.auth.revision), b"app/x", b"")
    assert revoked.value == errors.ErrGRPCPermissionDenied


def test_deleting_a_role_takes_it_from_every_user(member: Member) -> None:
    member.apply("apply_role_add", rpc_pb2.AuthRoleAddRequest(name="r"))
    add_user(member, "a")
    add_user(member, "b")
    for user in ("a", "b"):
        member.apply("apply_user_grant_role", rpc_pb2.AuthUserGrantRoleRequest(user=user, role="r"))
    member.apply("apply_role_delete", rpc_pb2.AuthRoleDeleteRequest(role="r"))
    assert member.reopen().users["a"].roles == [] and member.auth.users["b"].roles == []


def test_regranting_a_permission_changes_its_type_in_place(member: Member) -> None:
    member.apply("apply_role_add", rpc_pb2.AuthRoleAddRequest(name="r"))
    grant(member, "r", auth_pb2.Permission.READ, b"b")
    grant(member, "r", auth_pb2.Permission.READ, b"a", b"c")
    grant(member, "r", auth_pb2.Permission.WRITE, b"b")
    perms = member.auth.role_get(rpc_pb2.AuthRoleGetRequest(role="r")).perm
    assert [(p.key, p.range_end, p.permType) for p in perms] == [(b"a", b"c", 0), (b"b", b"", 1)]


def test_no_password_users_cannot_log_in_with_a_password(member: Member) -> None:
    enable_with_root(member)
    add_user(member, "cn-only", no_password=True)
    with pytest.raises(errors.EtcdError) as refused:
        member.auth.password_check("cn-only")
    assert refused.value == errors.ErrNoPasswordUser
    with pytest.raises(errors.EtcdError) as failed:
        member.auth.apply_authenticate("cn-only", 7, "prefix")
    assert failed.value == errors.ErrGRPCAuthFailed


def test_passwords_are_stored_as_bcrypt_hashes(member: Member) -> None:
    add_user(member, "u", "secret")
    stored = member.auth.users["u"].password
    assert stored.startswith(b"$2b$04$") and b"secret" not in stored
    assert password_matches(stored, "secret") and not password_matches(stored, "Secret")
    # bcrypt reads 72 bytes at most; etcd 3.4 accepts longer passwords and ignores the rest.
    long_hash = hash_password("x" * 80, LOW_COST).encode()
    assert password_matches(long_hash, "x" * 72 + "y" * 8)


def test_the_whole_auth_state_survives_a_restart(member: Member) -> None:
    member.apply("apply_role_add", rpc_pb2.AuthRoleAddRequest(name="r"))
    grant(member, "r", auth_pb2.Permission.READWRITE, b"k", b"\x00")
    add_user(member, "u")
    member.apply("apply_user_grant_role", rpc_pb2.AuthUserGrantRoleRequest(user="u", role="r"))
    enable_with_root(member)
    before = member.auth
    after = member.reopen()
    assert after.enabled and after.revision == before.revision
    assert after.users == before.users and after.roles == before.roles
    after.is_put_permitted(AuthInfo("u", after.revision), b"kz")
    assert after.user_list().users == ["root", "u"] and after.role_list().roles == ["r"]


def test_a_snapshot_of_the_store_carries_the_auth_state(member: Member, tmp_path: Path) -> None:
    member.apply("apply_role_add", rpc_pb2.AuthRoleAddRequest(name="r"))
    grant(member, "r", auth_pb2.Permission.READ, b"k")
    enable_with_root(member)
    follower = MvccStore(tmp_path / "follower")
    try:
        follower.replace_from_snapshot(member.kv.snapshot_bytes())
        restored = AuthStore(SimpleTokens())
        restored.load(follower)
        assert restored.enabled and restored.revision == member.auth.revision
        assert restored.roles == member.auth.roles and restored.users == member.auth.users
    finally:
        follower.close()
