"""What each client request needs from the auth store, as etcd's API layer and applier check it.

KV: a Range needs read on its range; a Put needs write on its key (and read when it asks for
the previous value, and write on every key already attached to its lease); a DeleteRange
needs write on its range (and read with prev_kv); a Txn needs read on every compare and the
above for every operation of both branches. Nested txns are checked too (etcd 3.4 skipped
them; 3.5 checks them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from etcdpb.etcdserverpb import rpc_pb2
from pyetcd import errors
from pyetcd.auth.store import AuthStore
from pyetcd.auth.tokens import AuthInfo

LeaseKeys = Callable[[int], Iterable[bytes]]
"""Keys attached to a lease (none for no lease or an unknown one)."""


def check_range(store: AuthStore, info: AuthInfo | None, req: rpc_pb2.RangeRequest) -> None:
    store.is_range_permitted(info, req.key, req.range_end)


def check_put(store: AuthStore, info: AuthInfo | None, req: rpc_pb2.PutRequest, lease_keys: LeaseKeys) -> None:
    store.is_put_permitted(info, req.key)
    # A lease already holding a key this user may not write could not be revoked by them: refuse it.
    check_lease_keys_writable(store, info, req.lease, lease_keys)
    if req.prev_kv:
        store.is_range_permitted(info, req.key, b"")


def check_delete_range(store: AuthStore, info: AuthInfo | None, req: rpc_pb2.DeleteRangeRequest) -> None:
    store.is_delete_range_permitted(info, req.key, req.range_end)
    if req.prev_kv:
        store.is_range_permitted(info, req.key, req.range_end)


def _check_ops(store: AuthStore, info: AuthInfo | None, ops: Iterable[rpc_pb2.RequestOp]) -> None:
    for op in ops:
        kind = op.WhichOneof("request")
        if kind == "request_range":
            store.is_range_permitted(info, op.request_range.key, op.request_range.range_end)
        elif kind == "request_put":
            store.is_put_permitted(info, op.request_put.key)
        elif kind == "request_delete_range":
            delete = op.request_delete_range
            if delete.prev_kv:
                store.is_range_permitted(info, delete.key, delete.range_end)
            store.is_delete_range_permitted(info, delete.key, delete.range_end)
        elif kind == "request_txn":
            check_txn(store, info, op.request_txn)


def check_txn(store: AuthStore, info: AuthInfo | None, req: rpc_pb2.TxnRequest) -> None:
    for compare in req.compare:
        store.is_range_permitted(info, compare.key, compare.range_end)
    _check_ops(store, info, req.success)
    _check_ops(store, info, req.failure)


def check_lease_keys_writable(store: AuthStore, info: AuthInfo | None, lease_id: int,
                              lease_keys: LeaseKeys) -> None:
    """LeaseRevoke (and attaching a lease): the user must be able to write every key the lease holds."""
    if lease_id == 0:
        return
    for key in lease_keys(lease_id):
        store.is_put_permitted(info, key)


def check_watch(store: AuthStore, info: AuthInfo | None, key: bytes, range_end: bytes) -> None:
    """A watch is created only over a range the user may read."""
    store.is_range_permitted(info, key, range_end)


_UNTRANSLATED = {
    errors.ErrGRPCPermissionDenied: errors.ErrAuthPermissionDeniedUntranslated,
    errors.ErrGRPCUserEmpty: errors.ErrAuthUserEmptyUntranslated,
    errors.ErrGRPCUserNotFound: errors.ErrAuthUserNotFoundUntranslated,
    errors.ErrGRPCInvalidAuthToken: errors.ErrAuthInvalidTokenUntranslated,
    errors.ErrGRPCAuthOldRevision: errors.ErrAuthOldRevisionUntranslated,
}


def untranslated(err: errors.EtcdError) -> errors.EtcdError:
    """The error as etcd 3.4's maintenance server returns it: the auth package's text, code UNKNOWN."""
    return _UNTRANSLATED.get(err, err)
