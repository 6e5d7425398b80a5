"""The auth store: users, roles, their key permissions, the enabled flag and the auth revision.

Changes arrive only as applied Raft entries (the applier calls the `apply_*` methods with the
entry's write batch), so every member holds the same auth state; it lives in the member's
LMDB environment beside the keys, in etcd's buckets `auth`, `authUsers` and `authRoles`, and
so travels in snapshots. Every change bumps the auth revision, which makes credentials
checked at an older revision stale (etcd's "revision of auth store is old").

The `is_*_permitted` checks are etcd's authStore checks, run by the API layer and the applier.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Protocol

from etcdpb.authpb import auth_pb2
from etcdpb.etcdserverpb import rpc_pb2
from pyetcd import errors
from pyetcd.auth.permissions import READ, WRITE, RangePermissions
from pyetcd.auth.tokens import AuthInfo, TokenProvider, TokenSigningError

AUTH_BUCKET = "auth"
USERS_BUCKET = "authUsers"
ROLES_BUCKET = "authRoles"
ENABLED_KEY = b"authEnabled"
REVISION_KEY = b"authRevision"
ENABLED = b"\x01"
DISABLED = b"\x00"

ROOT_USER = "root"
ROOT_ROLE = "root"


class BucketReader(Protocol):
    """Reads the store's small tables (MvccStore.meta_items)."""

    def meta_items(self, bucket: str) -> list[tuple[bytes, bytes]]: ...


class BucketWriter(Protocol):
    """Writes them inside the apply batch (WriteBatch.meta_put/meta_delete)."""

    def meta_put(self, bucket: str, key: bytes, value: bytes) -> None: ...
    def meta_delete(self, bucket: str, key: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class PasswordCheck:
    """What checking a password needs, read at one auth revision (the hash is checked off the loop)."""

    hashed: bytes
    revision: int


class AuthStore:
    """etcd's authStore: state read from the buckets, changed by applied entries, asked by every request."""

    def __init__(self, tokens: TokenProvider) -> None:
        self.tokens = tokens
        self.enabled = False
        self.revision = 1
        self.users: dict[str, auth_pb2.User] = {}
        self.roles: dict[str, auth_pb2.Role] = {}
        self._permissions: dict[str, RangePermissions] = {}

    # -- loading (start-up, and after a snapshot replaced the store) ---------------------------

    def load(self, reader: BucketReader) -> None:
        flags = dict(reader.meta_items(AUTH_BUCKET))
        self.enabled = flags.get(ENABLED_KEY) == ENABLED
        raw_revision = flags.get(REVISION_KEY)
        # etcd writes revision 1 when it creates an empty auth store.
        self.revision = max(1, int.from_bytes(raw_revision, "big")) if raw_revision else 1
        self.users = {key.decode(): auth_pb2.User.FromString(value) for key, value in reader.meta_items(USERS_BUCKET)}
        self.roles = {key.decode(): auth_pb2.Role.FromString(value) for key, value in reader.meta_items(ROLES_BUCKET)}
        self._refresh_permissions()
        if self.enabled:
            self.tokens.enable()
        else:
            self.tokens.disable()

    def _refresh_permissions(self) -> None:
        self._permissions = {
            name: RangePermissions.merge(perm for role in user.roles if role in self.roles
                                         for perm in self.roles[role].keyPermission)
            for name, user in self.users.items()}

    def _commit_revision(self, w: BucketWriter) -> None:
        self.revision += 1
        w.meta_put(AUTH_BUCKET, REVISION_KEY, self.revision.to_bytes(8, "big"))

    def _put_user(self, w: BucketWriter, user: auth_pb2.User) -> None:
        self.users[user.name.decode()] = user
        w.meta_put(USERS_BUCKET, user.name, user.SerializeToString())

    def _put_role(self, w: BucketWriter, role: auth_pb2.Role) -> None:
        self.roles[role.name.decode()] = role
        w.meta_put(ROLES_BUCKET, role.name, role.SerializeToString())

    def _changed(self, w: BucketWriter) -> None:
        self._commit_revision(w)
        self._refresh_permissions()

    def _user(self, name: str) -> auth_pb2.User:
        user = self.users.get(name)
        if user is None:
            raise errors.ErrGRPCUserNotFound
        return user

    def _role(self, name: str) -> auth_pb2.Role:
        role = self.roles.get(name)
        if role is None:
            raise errors.ErrGRPCRoleNotFound
        return role

    # -- enabling ------------------------------------------------------------------------------

    def apply_auth_enable(self, w: BucketWriter) -> rpc_pb2.AuthEnableResponse:
        if self.enabled:
            return rpc_pb2.AuthEnableResponse()
        root = self.users.get(ROOT_USER)
        if root is None:
            raise errors.ErrGRPCRootUserNotExist
        if ROOT_ROLE not in root.roles:
            raise errors.ErrGRPCRootRoleNotExist
        w.meta_put(AUTH_BUCKET, ENABLED_KEY, ENABLED)
        self.enabled = True
        self.tokens.enable()
        return rpc_pb2.AuthEnableResponse()

    def apply_auth_disable(self, w: BucketWriter) -> rpc_pb2.AuthDisableResponse:
        if not self.enabled:
            return rpc_pb2.AuthDisableResponse()
        w.meta_put(AUTH_BUCKET, ENABLED_KEY, DISABLED)
        self._commit_revision(w)
        self.enabled = False
        self.tokens.disable()
        return rpc_pb2.AuthDisableResponse()

    # -- authentication ------------------------------------------------------------------------

    def password_check(self, name: str) -> PasswordCheck:
        """The stored hash to compare a password with (etcd's CheckPassword, before bcrypt)."""
        if not self.enabled:
            raise errors.ErrGRPCAuthNotEnabled
        user = self.users.get(name)
        if user is None:
            raise errors.ErrGRPCAuthFailed
        if user.options.no_password:
            raise errors.ErrNoPasswordUser
        return PasswordCheck(user.password, self.revision)

    def apply_authenticate(self, name: str, index: int, token_prefix: str) -> rpc_pb2.AuthenticateResponse:
        """Hand out a token (the password was checked before proposing); every member registers it."""
        if not self.enabled:
            raise errors.ErrGRPCAuthNotEnabled
        user = self.users.get(name)
        if user is None or user.options.no_password:
            raise errors.ErrGRPCAuthFailed
        try:
            token = self.tokens.assign(name, self.revision, index, token_prefix)
        except TokenSigningError as err:
            raise errors.EtcdError(errors.Code.UNKNOWN, str(err)) from None
        return rpc_pb2.AuthenticateResponse(token=token)

    def info_from_token(self, token: str) -> AuthInfo:
        """Who a token names; ErrGRPCInvalidAuthToken when it is unknown, expired or forged."""
        info = self.tokens.info(token, self.revision)
        if info is None:
            raise errors.ErrGRPCInvalidAuthToken
        return info

    def info_from_common_name(self, common_name: str) -> AuthInfo:
        """A verified client certificate's CN names the user when no token is given (--client-cert-auth)."""
        return AuthInfo(common_name, self.revision)

    # -- users ---------------------------------------------------------------------------------

    def apply_user_add(self, w: BucketWriter, req: rpc_pb2.AuthUserAddRequest) -> rpc_pb2.AuthUserAddResponse:
        """Add a user; the request carries the bcrypt hash (hashedPassword), made before proposing."""
        if not req.name:
            raise errors.ErrGRPCUserEmpty
        if req.name in self.users:
            raise errors.ErrGRPCUserAlreadyExist
        no_password = req.options.no_password
        user = auth_pb2.User(name=req.name.encode(), password=b"" if no_password else req.hashedPassword.encode(),
                             options=auth_pb2.UserAddOptions(no_password=no_password))
        self._put_user(w, user)
        self._changed(w)
        return rpc_pb2.AuthUserAddResponse()

    def apply_user_delete(self, w: BucketWriter, req: rpc_pb2.AuthUserDeleteRequest) -> rpc_pb2.AuthUserDeleteResponse:
        if self.enabled and req.name == ROOT_USER:
            raise errors.ErrGRPCInvalidAuthMgmt
        self._user(req.name)
        del self.users[req.name]
        w.meta_delete(USERS_BUCKET, req.name.encode())
        self._changed(w)
        self.tokens.invalidate_user(req.name)
        return rpc_pb2.AuthUserDeleteResponse()

    def apply_user_change_password(self, w: BucketWriter, req: rpc_pb2.AuthUserChangePasswordRequest
                                   ) -> rpc_pb2.AuthUserChangePasswordResponse:
        user = self._user(req.name)
        updated = auth_pb2.User(name=user.name, roles=user.roles, password=req.hashedPassword.encode(),
                                options=user.options)
        self._put_user(w, updated)
        self._changed(w)
        self.tokens.invalidate_user(req.name)
        return rpc_pb2.AuthUserChangePasswordResponse()

    def apply_user_grant_role(self, w: BucketWriter, req: rpc_pb2.AuthUserGrantRoleRequest
                              ) -> rpc_pb2.AuthUserGrantRoleResponse:
        user = self._user(req.user)
        if req.role != ROOT_ROLE:
            self._role(req.role)
        if req.role in user.roles:
            return rpc_pb2.AuthUserGrantRoleResponse()  # etcd ignores a repeated grant
        updated = auth_pb2.User(name=user.name, password=user.password, options=user.options,
                                roles=sorted([*user.roles, req.role]))
        self._put_user(w, updated)
        self._changed(w)
        return rpc_pb2.AuthUserGrantRoleResponse()

    def apply_user_revoke_role(self, w: BucketWriter, req: rpc_pb2.AuthUserRevokeRoleRequest
                               ) -> rpc_pb2.AuthUserRevokeRoleResponse:
        if self.enabled and req.name == ROOT_USER and req.role == ROOT_ROLE:
            raise errors.ErrGRPCInvalidAuthMgmt
        user = self._user(req.name)
        if req.role not in user.roles:
            raise errors.ErrGRPCRoleNotGranted
        updated = auth_pb2.User(name=user.name, password=user.password, options=user.options,
                                roles=[role for role in user.roles if role != req.role])
        self._put_user(w, updated)
        self._changed(w)
        return rpc_pb2.AuthUserRevokeRoleResponse()

    def user_get(self, req: rpc_pb2.AuthUserGetRequest) -> rpc_pb2.AuthUserGetResponse:
        return rpc_pb2.AuthUserGetResponse(roles=list(self._user(req.name).roles))

    def user_list(self) -> rpc_pb2.AuthUserListResponse:
        return rpc_pb2.AuthUserListResponse(users=sorted(self.users, key=str.encode))

    # -- roles ---------------------------------------------------------------------------------

    def apply_role_add(self, w: BucketWriter, req: rpc_pb2.AuthRoleAddRequest) -> rpc_pb2.AuthRoleAddResponse:
        if not req.name:
            raise errors.ErrGRPCRoleEmpty
        if req.name in self.roles:
            raise errors.ErrGRPCRoleAlreadyExist
        self._put_role(w, auth_pb2.Role(name=req.name.encode()))
        self._commit_revision(w)
        return rpc_pb2.AuthRoleAddResponse()

    def apply_role_delete(self, w: BucketWriter, req: rpc_pb2.AuthRoleDeleteRequest) -> rpc_pb2.AuthRoleDeleteResponse:
        if self.enabled and req.role == ROOT_ROLE:
            raise errors.ErrGRPCInvalidAuthMgmt
        self._role(req.role)
        del self.roles[req.role]
        w.meta_delete(ROLES_BUCKET, req.role.encode())
        for user in list(self.users.values()):
            if req.role in user.roles:
                self._put_user(w, auth_pb2.User(name=user.name, password=user.password, options=user.options,
                                                roles=[role for role in user.roles if role != req.role]))
        self._changed(w)
        return rpc_pb2.AuthRoleDeleteResponse()

    def apply_role_grant_permission(self, w: BucketWriter, req: rpc_pb2.AuthRoleGrantPermissionRequest
                                    ) -> rpc_pb2.AuthRoleGrantPermissionResponse:
        role = auth_pb2.Role()
        role.CopyFrom(self._role(req.name))
        perms = role.keyPermission
        keys = [perm.key for perm in perms]
        at = bisect.bisect_left(keys, req.perm.key)
        # Like etcd, only the first permission on the same key is looked at for an update.
        if at < len(perms) and perms[at].key == req.perm.key and perms[at].range_end == req.perm.range_end:
            perms[at].permType = req.perm.permType
        else:
            added = auth_pb2.Permission(key=req.perm.key, range_end=req.perm.range_end, permType=req.perm.permType)
            ordered = sorted([*perms, added], key=lambda perm: perm.key)
            del perms[:]
            perms.extend(ordered)
        self._put_role(w, role)
        self._changed(w)
        return rpc_pb2.AuthRoleGrantPermissionResponse()

    def apply_role_revoke_permission(self, w: BucketWriter, req: rpc_pb2.AuthRoleRevokePermissionRequest
                                     ) -> rpc_pb2.AuthRoleRevokePermissionResponse:
        role = self._role(req.role)
        kept = [perm for perm in role.keyPermission if perm.key != req.key or perm.range_end != req.range_end]
        if len(kept) == len(role.keyPermission):
            raise errors.ErrGRPCPermissionNotGranted
        self._put_role(w, auth_pb2.Role(name=role.name, keyPermission=kept))
        self._changed(w)
        return rpc_pb2.AuthRoleRevokePermissionResponse()

    def role_get(self, req: rpc_pb2.AuthRoleGetRequest) -> rpc_pb2.AuthRoleGetResponse:
        return rpc_pb2.AuthRoleGetResponse(perm=list(self._role(req.role).keyPermission))

    def role_list(self) -> rpc_pb2.AuthRoleListResponse:
        return rpc_pb2.AuthRoleListResponse(roles=sorted(self.roles, key=str.encode))

    # -- checks --------------------------------------------------------------------------------

    def has_role(self, username: str, role: str) -> bool:
        user = self.users.get(username)
        return user is not None and role in user.roles

    def _is_op_permitted(self, info: AuthInfo | None, key: bytes, range_end: bytes, perm_type: int) -> None:
        if not self.enabled:
            return
        if info is None or info.revision == 0:
            raise errors.ErrGRPCUserEmpty
        if info.revision < self.revision:
            raise errors.ErrGRPCAuthOldRevision
        user = self.users.get(info.username)
        if user is None:
            raise errors.ErrGRPCPermissionDenied
        if ROOT_ROLE in user.roles:
            return
        permissions = self._permissions.get(info.username)
        if permissions is None or not permissions.allows(key, range_end, perm_type):
            raise errors.ErrGRPCPermissionDenied

    def is_range_permitted(self, info: AuthInfo | None, key: bytes, range_end: bytes) -> None:
        self._is_op_permitted(info, key, range_end, READ)

    def is_put_permitted(self, info: AuthInfo | None, key: bytes) -> None:
        self._is_op_permitted(info, key, b"", WRITE)

    def is_delete_range_permitted(self, info: AuthInfo | None, key: bytes, range_end: bytes) -> None:
        self._is_op_permitted(info, key, range_end, WRITE)

    def is_admin_permitted(self, info: AuthInfo | None) -> None:
        """Root's role is needed (auth management, member changes, some maintenance)."""
        if not self.enabled:
            return
        if info is None or not info.username:
            raise errors.ErrGRPCUserEmpty
        user = self.users.get(info.username)
        if user is None:
            raise errors.ErrGRPCUserNotFound
        if ROOT_ROLE not in user.roles:
            raise errors.ErrGRPCPermissionDenied
