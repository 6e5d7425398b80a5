"""The auth side of applying a committed entry (etcd's authApplierV3 and the auth part of its applier).

Before an entry changes anything, the user named in its header is checked at the auth
revision the header carries: auth management needs root, KV operations need their key
permissions, a lease revoke needs write on the lease's keys. Auth requests are then applied
to the auth store. Every member runs the same checks on the same state, so all decide alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyetcd import errors
from pyetcd.auth.checks import (
    LeaseKeys,
    check_delete_range,
    check_lease_keys_writable,
    check_put,
    check_range,
    check_txn,
)
from pyetcd.auth.store import AuthStore, BucketWriter
from pyetcd.auth.tokens import AuthInfo

ADMIN_REQUESTS = frozenset({
    "auth_enable", "auth_disable", "auth_user_add", "auth_user_delete", "auth_user_change_password",
    "auth_user_grant_role", "auth_user_revoke_role", "auth_role_add", "auth_role_grant_permission",
    "auth_role_revoke_permission", "auth_role_delete", "auth_user_list", "auth_role_list",
})
AUTH_REQUESTS = ADMIN_REQUESTS | {"authenticate", "auth_user_get", "auth_role_get"}


def request_kind(request: Any) -> str | None:
    """The name of the request field an InternalRaftRequest carries."""
    for descriptor, _ in request.ListFields():
        if descriptor.name not in ("header", "ID"):
            return str(descriptor.name)
    return None


def header_auth_info(request: Any) -> AuthInfo:
    return AuthInfo(request.header.username, request.header.auth_revision)


def authorize_entry(auth: AuthStore, request: Any, kind: str | None, lease_keys: LeaseKeys) -> None:
    """Raise the etcd error that stops this entry for the user its header names; return if it may run."""
    info = header_auth_info(request)
    if kind in ADMIN_REQUESTS:
        auth.is_admin_permitted(info)
    elif kind == "put":
        check_put(auth, info, request.put, lease_keys)
    elif kind == "delete_range":
        check_delete_range(auth, info, request.delete_range)
    elif kind == "txn":
        check_txn(auth, info, request.txn)
    elif kind == "range":
        check_range(auth, info, request.range)
    elif kind == "lease_revoke":
        check_lease_keys_writable(auth, info, request.lease_revoke.ID, lease_keys)
    elif kind == "auth_user_get":
        _admin_or(auth, info, lambda: request.auth_user_get.name == info.username)
    elif kind == "auth_role_get":
        _admin_or(auth, info, lambda: auth.has_role(info.username, request.auth_role_get.role))


def _admin_or(auth: AuthStore, info: AuthInfo, allowed: Callable[[], bool]) -> None:
    """UserGet of oneself and RoleGet of one's own role need no root (etcd's authApplierV3)."""
    try:
        auth.is_admin_permitted(info)
    except errors.EtcdError:
        if not allowed():
            raise


def apply_auth_request(auth: AuthStore, w: BucketWriter, request: Any, kind: str, index: int) -> Any:
    """Apply an auth request; `index` is the entry's Raft index (it names simple tokens)."""
    if kind == "authenticate":
        req = request.authenticate
        return auth.apply_authenticate(req.name, index, req.simple_token)
    if kind == "auth_enable":
        return auth.apply_auth_enable(w)
    if kind == "auth_disable":
        return auth.apply_auth_disable(w)
    if kind == "auth_user_get":
        return auth.user_get(request.auth_user_get)
    if kind == "auth_user_list":
        return auth.user_list()
    if kind == "auth_role_get":
        return auth.role_get(request.auth_role_get)
    if kind == "auth_role_list":
        return auth.role_list()
    method = getattr(auth, "apply_" + kind.removeprefix("auth_"))
    return method(w, getattr(request, kind))
