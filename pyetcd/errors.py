"""etcd's errors, defined once: each is a gRPC status code with etcd 3.4's exact message.

A client (etcdctl, clientv3) recognises server errors by their message text, so the
messages here must match etcd's byte for byte. Servicers turn any exception into one of
these with `to_etcd_error` and end the call with `abort_with`.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, NoReturn, TypeVar

import grpc

import storage.mvcc.errors as mvcc
from raft.core import ProposalDropped

Code = grpc.StatusCode


class EtcdError(Exception):
    """An error etcd reports to clients: a gRPC status code and a message.

    Two errors are equal when code and message are equal, so a caught error can be
    compared with the constants below (`err == ErrGRPCLeaseNotFound`).
    """

    def __init__(self, code: Any, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EtcdError):
            return NotImplemented
        return bool(self.code == other.code and self.message == other.message)

    def __hash__(self) -> int:
        return hash((self.code, self.message))

    def __repr__(self) -> str:
        return f"EtcdError({self.code.name}, {self.message!r})"

    def __str__(self) -> str:
        return self.message


class StartupError(Exception):
    """The server cannot start (bad flags for the existing data, removed member, port in use)."""


class NotPrimaryError(Exception):
    """The lessor is not the primary (this member is not the leader): renewals go to the leader."""


class LeaseExpiredError(Exception):
    """A renewal reached a lease that has expired but whose revoke has not been applied yet."""

    def __init__(self, lease_id: int) -> None:
        super().__init__(f"lease {lease_id:x} expired")
        self.lease_id = lease_id


# --- request checks (v3rpc key.go) ---
ErrGRPCEmptyKey = EtcdError(Code.INVALID_ARGUMENT, "etcdserver: key is not provided")
ErrGRPCKeyNotFound = EtcdError(Code.INVALID_ARGUMENT, "etcdserver: key not found")
ErrGRPCValueProvided = EtcdError(Code.INVALID_ARGUMENT, "etcdserver: value is provided")
ErrGRPCLeaseProvided = EtcdError(Code.INVALID_ARGUMENT, "etcdserver: lease is provided")
ErrGRPCTooManyOps = EtcdError(Code.INVALID_ARGUMENT, "etcdserver: too many operations in txn request")
ErrGRPCDuplicateKey = EtcdError(Code.INVALID_ARGUMENT, "etcdserver: duplicate key given in txn request")

# --- mvcc ---
ErrGRPCCompacted = EtcdError(Code.OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted")
ErrGRPCFutureRev = EtcdError(Code.OUT_OF_RANGE, "etcdserver: mvcc: required revision is a future revision")
ErrGRPCNoSpace = EtcdError(Code.RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded")

# --- leases ---
ErrGRPCLeaseNotFound = EtcdError(Code.NOT_FOUND, "etcdserver: requested lease not found")
ErrGRPCLeaseExist = EtcdError(Code.FAILED_PRECONDITION, "etcdserver: lease already exists")
ErrGRPCLeaseTTLTooLarge = EtcdError(Code.OUT_OF_RANGE, "etcdserver: too large lease TTL")

# --- watch ---
ErrGRPCWatchCanceled = EtcdError(Code.CANCELLED, "etcdserver: watch canceled")

# --- membership ---
ErrGRPCMemberExist = EtcdError(Code.FAILED_PRECONDITION, "etcdserver: member ID already exist")
ErrGRPCPeerURLExist = EtcdError(Code.FAILED_PRECONDITION, "etcdserver: Peer URLs already exists")
ErrGRPCMemberNotEnoughStarted = EtcdError(
    Code.FAILED_PRECONDITION, "etcdserver: re-configuration failed due to not enough started members")
ErrGRPCMemberBadURLs = EtcdError(Code.INVALID_ARGUMENT, "etcdserver: given member URLs are invalid")
ErrGRPCMemberNotFound = EtcdError(Code.NOT_FOUND, "etcdserver: member not found")
ErrGRPCMemberNotLearner = EtcdError(Code.FAILED_PRECONDITION, "etcdserver: can only promote a learner member")
ErrGRPCLearnerNotReady = EtcdError(
    Code.FAILED_PRECONDITION, "etcdserver: can only promote a learner member which is in sync with leader")
ErrGRPCTooManyLearners = EtcdError(
    Code.FAILED_PRECONDITION, "etcdserver: too many learner members in cluster")

# --- request limits ---
ErrGRPCRequestTooLarge = EtcdError(Code.INVALID_ARGUMENT, "etcdserver: request is too large")
ErrGRPCRequestTooManyRequests = EtcdError(Code.RESOURCE_EXHAUSTED, "etcdserver: too many requests")

# --- auth ---
ErrGRPCRootUserNotExist = EtcdError(Code.FAILED_PRECONDITION, "etcdserver: root user does not exist")
ErrGRPCRootRoleNotExist = EtcdError(Code.FAILED_PRECONDITION, "etcdserver: root user does not have root role")
ErrGRPCUserAlreadyExist = EtcdError(Code.FAILED_PRECONDITION, "etcdserver: user name already exists")
ErrGRPCUserEmpty = EtcdError(Code.INVALID_ARGUMENT, "etcdserver: user name is empty")
ErrGRPCUserNotFound = EtcdError(Code.FAILED_PRECONDITION, "etcdserver: user name not found")
ErrGRPCRoleAlreadyExist = EtcdError(Code.FAILED_PRECONDITION, "etcdserver: role name already exists")
ErrGRPCRoleNotFound = EtcdError(Code.FAILED_PRECONDITION, "etcdserver: role name not found")
ErrGRPCRoleEmpty = EtcdError(Code.INVALID_ARGUMENT, "etcdserver: role name is empty")
ErrGRPCAuthFailed = EtcdError(
    Code.INVALID_ARGUMENT, "etcdserver: authentication failed, invalid user ID or password")
ErrGRPCPermissionDenied = EtcdError(Code.PERMISSION_DENIED, "etcdserver: permission denied")
ErrGRPCRoleNotGranted = EtcdError(Code.FAILED_PRECONDITION, "etcdserver: role is not granted to the user")
ErrGRPCPermissionNotGranted = EtcdError(
    Code.FAILED_PRECONDITION, "etcdserver: permission is not granted to the role")
ErrGRPCAuthNotEnabled = EtcdError(Code.FAILED_PRECONDITION, "etcdserver: authentication is not enabled")
ErrGRPCInvalidAuthToken = EtcdError(Code.UNAUTHENTICATED, "etcdserver: invalid auth token")
ErrGRPCInvalidAuthMgmt = EtcdError(Code.INVALID_ARGUMENT, "etcdserver: invalid auth management")
ErrGRPCAuthOldRevision = EtcdError(Code.INVALID_ARGUMENT, "etcdserver: revision of auth store is old")

# --- auth errors etcd 3.4 returns without translating them: clients see code UNKNOWN and the
# auth package's own text (Authenticate as a no-password user; the admin check of Defragment,
# Snapshot, Hash and HashKV) ---
ErrNoPasswordUser = EtcdError(
    Code.UNKNOWN, "auth: authentication failed, password was given for no password user")
ErrAuthPermissionDeniedUntranslated = EtcdError(Code.UNKNOWN, "auth: permission denied")
ErrAuthUserEmptyUntranslated = EtcdError(Code.UNKNOWN, "auth: user name is empty")
ErrAuthUserNotFoundUntranslated = EtcdError(Code.UNKNOWN, "auth: user not found")
ErrAuthInvalidTokenUntranslated = EtcdError(Code.UNKNOWN, "auth: invalid auth token")
ErrAuthOldRevisionUntranslated = EtcdError(Code.UNKNOWN, "auth: revision in header is old")

# --- leadership and availability ---
ErrGRPCNoLeader = EtcdError(Code.UNAVAILABLE, "etcdserver: no leader")
ErrGRPCNotLeader = EtcdError(Code.FAILED_PRECONDITION, "etcdserver: not leader")
ErrGRPCLeaderChanged = EtcdError(Code.UNAVAILABLE, "etcdserver: leader changed")
ErrGRPCNotCapable = EtcdError(Code.UNAVAILABLE, "etcdserver: not capable")
ErrGRPCStopped = EtcdError(Code.UNAVAILABLE, "etcdserver: server stopped")
ErrGRPCTimeout = EtcdError(Code.UNAVAILABLE, "etcdserver: request timed out")
ErrGRPCTimeoutDueToLeaderFail = EtcdError(
    Code.UNAVAILABLE, "etcdserver: request timed out, possibly due to previous leader failure")
ErrGRPCTimeoutDueToConnectionLost = EtcdError(
    Code.UNAVAILABLE, "etcdserver: request timed out, possibly due to connection lost")
ErrGRPCTimeoutWaitAppliedIndex = EtcdError(
    Code.UNAVAILABLE, "etcdserver: request timed out, waiting for the applied index took too long")
ErrGRPCUnhealthy = EtcdError(Code.UNAVAILABLE, "etcdserver: unhealthy cluster")
ErrGRPCCorrupt = EtcdError(Code.DATA_LOSS, "etcdserver: corrupt cluster")
ErrGRPCNotSupportedForLearner = EtcdError(Code.UNAVAILABLE, "etcdserver: rpc not supported for learner")
ErrGRPCBadLeaderTransferee = EtcdError(Code.FAILED_PRECONDITION, "etcdserver: bad leader transferee")

# --- etcd's client-side names for the same errors (rpctypes.ErrX = Error(ErrGRPCX)) ---
ErrEmptyKey = ErrGRPCEmptyKey
ErrKeyNotFound = ErrGRPCKeyNotFound
ErrValueProvided = ErrGRPCValueProvided
ErrLeaseProvided = ErrGRPCLeaseProvided
ErrTooManyOps = ErrGRPCTooManyOps
ErrDuplicateKey = ErrGRPCDuplicateKey
ErrCompacted = ErrGRPCCompacted
ErrFutureRev = ErrGRPCFutureRev
ErrNoSpace = ErrGRPCNoSpace
ErrLeaseNotFound = ErrGRPCLeaseNotFound
ErrLeaseExist = ErrGRPCLeaseExist
ErrLeaseTTLTooLarge = ErrGRPCLeaseTTLTooLarge
ErrMemberExist = ErrGRPCMemberExist
ErrPeerURLExist = ErrGRPCPeerURLExist
ErrMemberNotEnoughStarted = ErrGRPCMemberNotEnoughStarted
ErrMemberBadURLs = ErrGRPCMemberBadURLs
ErrMemberNotFound = ErrGRPCMemberNotFound
ErrMemberNotLearner = ErrGRPCMemberNotLearner
ErrLearnerNotReady = ErrGRPCLearnerNotReady
ErrTooManyLearners = ErrGRPCTooManyLearners
ErrRequestTooLarge = ErrGRPCRequestTooLarge
ErrTooManyRequests = ErrGRPCRequestTooManyRequests
ErrRootUserNotExist = ErrGRPCRootUserNotExist
ErrRootRoleNotExist = ErrGRPCRootRoleNotExist
ErrUserAlreadyExist = ErrGRPCUserAlreadyExist
ErrUserEmpty = ErrGRPCUserEmpty
ErrUserNotFound = ErrGRPCUserNotFound
ErrRoleAlreadyExist = ErrGRPCRoleAlreadyExist
ErrRoleNotFound = ErrGRPCRoleNotFound
ErrRoleEmpty = ErrGRPCRoleEmpty
ErrAuthFailed = ErrGRPCAuthFailed
ErrPermissionDenied = ErrGRPCPermissionDenied
ErrRoleNotGranted = ErrGRPCRoleNotGranted
ErrPermissionNotGranted = ErrGRPCPermissionNotGranted
ErrAuthNotEnabled = ErrGRPCAuthNotEnabled
ErrInvalidAuthToken = ErrGRPCInvalidAuthToken
ErrInvalidAuthMgmt = ErrGRPCInvalidAuthMgmt
ErrAuthOldRevision = ErrGRPCAuthOldRevision
ErrNoLeader = ErrGRPCNoLeader
ErrNotLeader = ErrGRPCNotLeader
ErrLeaderChanged = ErrGRPCLeaderChanged
ErrNotCapable = ErrGRPCNotCapable
ErrStopped = ErrGRPCStopped
ErrTimeout = ErrGRPCTimeout
ErrTimeoutDueToLeaderFail = ErrGRPCTimeoutDueToLeaderFail
ErrTimeoutDueToConnectionLost = ErrGRPCTimeoutDueToConnectionLost
ErrTimeoutWaitAppliedIndex = ErrGRPCTimeoutWaitAppliedIndex
ErrUnhealthy = ErrGRPCUnhealthy
ErrCorrupt = ErrGRPCCorrupt
ErrBadLeaderTransferee = ErrGRPCBadLeaderTransferee

# --- etcdserver errors that reach clients through togRPCError ---
ErrNotEnoughStartedMembers = ErrGRPCMemberNotEnoughStarted
ErrMemberRemoved = ErrGRPCMemberNotFound  # membership.ErrIDRemoved: clients see "member not found"
# Not in etcd 3.4's error map, so it reaches clients as UNKNOWN with this text.
ErrTimeoutLeaderTransfer = EtcdError(
    Code.UNKNOWN, "etcdserver: request timed out, leader transfer took too long")

ALL_ERRORS: tuple[EtcdError, ...] = tuple(
    value for name, value in sorted(globals().items())
    if name.startswith("ErrGRPC") and isinstance(value, EtcdError))
_BY_MESSAGE: dict[str, EtcdError] = {err.message: err for err in ALL_ERRORS}

# What the lower layers raise, as the etcd error clients see (checked in order, by isinstance).
_LOWER_LAYER_ERRORS: tuple[tuple[type[BaseException], EtcdError], ...] = (
    (mvcc.CompactedError, ErrGRPCCompacted),
    (mvcc.FutureRevisionError, ErrGRPCFutureRev),
    (mvcc.LeaseNotFoundError, ErrGRPCLeaseNotFound),
    (mvcc.LeaseExistsError, ErrGRPCLeaseExist),
    (mvcc.QuotaExceededError, ErrGRPCNoSpace),
    # etcd answers a proposal that Raft refuses (no leader yet, transfer in progress) with "no leader".
    (ProposalDropped, ErrGRPCNoLeader),
)


def from_message(message: str) -> EtcdError | None:
    """The etcd error with this exact message, if any (as clientv3 recognises errors by text)."""
    return _BY_MESSAGE.get(message)


def from_status(code: Any, message: str) -> EtcdError:
    """An error received from another member (e.g. a forwarded request) as the same etcd error."""
    known = _BY_MESSAGE.get(message)
    return known if known is not None else EtcdError(code, message)


def from_rpc_error(err: Any) -> EtcdError:
    """A grpc.aio.AioRpcError from a call to another member, as the etcd error it carries."""
    return from_status(err.code(), err.details() or "")


def _lower_layer_error(exc: BaseException) -> EtcdError | None:
    for cls, etcd_error in _LOWER_LAYER_ERRORS:
        if isinstance(exc, cls):
            return etcd_error
    return None


def to_etcd_error(exc: BaseException) -> EtcdError:
    """Map any exception a server call raised to the error etcd would report for it.

    Anything unknown becomes UNKNOWN with the exception's text, as etcd's togRPCError does.
    """
    if isinstance(exc, EtcdError):
        return exc
    if isinstance(exc, NotPrimaryError):
        return ErrGRPCNotLeader
    if isinstance(exc, LeaseExpiredError):
        return ErrGRPCLeaseNotFound
    if isinstance(exc, grpc.aio.AioRpcError):
        return from_rpc_error(exc)
    lower = _lower_layer_error(exc)
    if lower is not None:
        return lower
    if isinstance(exc, TimeoutError):  # asyncio.TimeoutError is TimeoutError since 3.11
        return ErrGRPCTimeout
    return EtcdError(Code.UNKNOWN, str(exc) or type(exc).__name__)


AnswerT = TypeVar("AnswerT")


async def answer_or_abort(call: Awaitable[AnswerT], context: Any) -> AnswerT:
    """Await a call's answer; any exception ends the call with the etcd error for it (the one error path)."""
    try:
        return await call
    except grpc.aio.AbortError:
        raise
    except Exception as err:  # noqa: BLE001 - every failure goes back as etcd's error
        await abort_with(context, err)


async def abort_with(context: Any, err: BaseException) -> NoReturn:
    """End a grpc.aio call with the etcd error for `err` (never returns)."""
    etcd_err = to_etcd_error(err)
    await context.abort(etcd_err.code, etcd_err.message)
    raise AssertionError("grpc context.abort returned")  # pragma: no cover - abort always raises
