"""The MVCC store's errors, defined once; the server maps each to etcd's gRPC error."""

from __future__ import annotations


class MvccError(Exception):
    """Base class of every error the MVCC store raises on purpose."""


class CompactedError(MvccError):
    """The requested revision is below the compaction point (etcd's ErrCompacted)."""

    def __init__(self, compact_revision: int) -> None:
        super().__init__("mvcc: required revision has been compacted")
        self.compact_revision = compact_revision


class FutureRevisionError(MvccError):
    """The requested revision has not happened yet (etcd's ErrFutureRev)."""

    def __init__(self, current_revision: int) -> None:
        super().__init__("mvcc: required revision is a future revision")
        self.current_revision = current_revision


class LeaseNotFoundError(MvccError):
    """A put or revoke named a lease the store does not hold (etcd's lease.ErrLeaseNotFound)."""

    def __init__(self, lease_id: int) -> None:
        super().__init__("lease not found")
        self.lease_id = lease_id


class LeaseExistsError(MvccError):
    """A grant reused the ID of a lease that is still alive (etcd's lease.ErrLeaseExists)."""

    def __init__(self, lease_id: int) -> None:
        super().__init__("lease already exists")
        self.lease_id = lease_id


class QuotaExceededError(MvccError):
    """The write would grow the store beyond its quota; nothing of it was applied (etcd's ErrNoSpace)."""

    def __init__(self, quota_bytes: int, size_bytes: int) -> None:
        super().__init__("etcdserver: mvcc: database space exceeded")
        self.quota_bytes = quota_bytes
        self.size_bytes = size_bytes


class StoreClosedError(MvccError):
    """The store was closed (etcd's mvcc ErrClosed)."""

    def __init__(self) -> None:
        super().__init__("mvcc: closed")
