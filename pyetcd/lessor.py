"""The lessor: the lease table and the leader-side clock that decides when a lease expires.

As in etcd's lessor, every member holds every lease (the applier grants and revokes them
in log order), but only the primary lessor -- the one on the Raft leader -- keeps time.
It refreshes a lease on each keep-alive and reports expired leases; the server then
proposes their revokes through Raft, so every member deletes the same keys at the same
revision. A follower holds its leases "forever" until it is promoted, and a new leader
first extends every lease (by an election timeout) so clients get a chance to reach it.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pyetcd import errors
from pyetcd.errors import LeaseExpiredError, NotPrimaryError

NO_LEASE = 0
MAX_LEASE_TTL = 9_000_000_000
"""etcd's largest lease TTL in seconds; larger grants fail with "etcdserver: too large lease TTL"."""

EXPIRED_LEASE_RETRY_INTERVAL = 3.0
"""Seconds before an expired lease whose revoke has not been applied is reported again."""

LEASE_REVOKE_RATE = 1000
"""Revokes per second the leader aims for; `expired()` hands out half of it per call (two polls a second)."""


def check_lease_ttl(ttl: int) -> None:
    """etcd's upper bound on a grant's TTL (the lower bound is the lessor's minimum, see Lessor.granted_ttl)."""
    if ttl > MAX_LEASE_TTL:
        raise errors.ErrGRPCLeaseTTLTooLarge


@dataclass(slots=True)
class Lease:
    """One lease: its ID, granted TTL (seconds) and, on the primary, its expiry on the lessor's clock."""

    id: int
    ttl: int
    expiry: float | None = None  # None: "forever" (this lessor is not the primary)

    def remaining(self, now: float) -> float | None:
        """Seconds left before expiry, or None when this lessor does not keep time for it."""
        return None if self.expiry is None else self.expiry - now


class Lessor:
    """The leases of one member. Not thread-safe: use it from the server's event loop."""

    def __init__(self, min_ttl: int = 2, *, clock: Callable[[], float] = time.monotonic,
                 retry_interval: float = EXPIRED_LEASE_RETRY_INTERVAL,
                 revoke_rate: int = LEASE_REVOKE_RATE) -> None:
        self.min_ttl = min_ttl
        self._clock = clock
        self._retry_interval = retry_interval
        self._revoke_rate = revoke_rate
        self._leases: dict[int, Lease] = {}
        self._primary = False
        # Expiry notifier: a min-heap of (deadline, lease ID) with lazy deletion; `_deadlines`
        # holds each lease's current deadline, so heap entries that disagree are stale.
        self._heap: list[tuple[float, int]] = []
        self._deadlines: dict[int, float] = {}
        # Renewals waiting for an expired lease's fate (revoked, or this member demoted).
        self._settled: dict[int, asyncio.Event] = {}

    # --- state shared by every member (driven by the applier, in log order) ---

    def restore(self, leases: Iterable[tuple[int, int]]) -> None:
        """Replace the table with the (lease ID, TTL) pairs persisted in the store (start, snapshot)."""
        self._leases = {lease_id: Lease(lease_id, self.granted_ttl(ttl)) for lease_id, ttl in leases}
        self._heap.clear()
        self._deadlines.clear()
        self._wake_all_waiters()
        if self._primary:
            now = self._clock()
            for lease in self._leases.values():
                self._refresh(lease, now, 0.0)

    def granted_ttl(self, ttl: int) -> int:
        """The TTL a grant asking for ``ttl`` gets: at least the minimum TTL, as etcd's lessor grants it."""
        return max(ttl, self.min_ttl)

    def on_grant(self, lease_id: int, ttl: int) -> int:
        """Apply a LeaseGrant (its TTL checked before it was proposed); returns the TTL actually granted."""
        if lease_id == NO_LEASE:
            raise errors.ErrGRPCLeaseNotFound
        if lease_id in self._leases:
            raise errors.ErrGRPCLeaseExist
        lease = Lease(lease_id, self.granted_ttl(ttl))
        self._leases[lease_id] = lease
        if self._primary:
            self._refresh(lease, self._clock(), 0.0)
        return lease.ttl

    def on_revoke(self, lease_id: int) -> None:
        """Apply a LeaseRevoke (the store deletes the attached keys in the same apply)."""
        if self._leases.pop(lease_id, None) is None:
            raise errors.ErrGRPCLeaseNotFound
        self._deadlines.pop(lease_id, None)
        waiter = self._settled.pop(lease_id, None)
        if waiter is not None:
            waiter.set()

    def lookup(self, lease_id: int) -> Lease | None:
        return self._leases.get(lease_id)

    def __contains__(self, lease_id: object) -> bool:
        return lease_id in self._leases

    def __len__(self) -> int:
        return len(self._leases)

    def leases(self) -> list[Lease]:
        """Every lease, soonest expiry first (ties, and "forever" leases, by ID), as etcd lists them."""
        return sorted(self._leases.values(),
                      key=lambda lease: (lease.expiry is None, lease.expiry or 0.0, lease.id))

    def time_to_live(self, lease_id: int) -> tuple[int, int]:
        """(granted TTL, remaining whole seconds), or (0, -1) for an unknown lease as etcd answers it.

        Only the primary knows the remaining time; elsewhere the granted TTL is reported
        (the server asks the leader instead).
        """
        lease = self._leases.get(lease_id)
        if lease is None:
            return 0, -1
        remaining = lease.remaining(self._clock())
        if remaining is None:
            return lease.ttl, lease.ttl
        return lease.ttl, max(0, int(remaining))  # int() truncates, as etcd's int64(Seconds()) does

    # --- leader-only: the clock ---

    @property
    def is_primary(self) -> bool:
        return self._primary

    def promote(self, extend: float) -> None:
        """This member became leader: start keeping time, giving every lease TTL + `extend` seconds.

        When many leases would expire within the same second, later ones are pushed back so
        the new leader revokes at most ~3/4 of the revoke rate per second (etcd does the same).
        """
        self._primary = True
        now = self._clock()
        for lease in self._leases.values():
            self._refresh(lease, now, extend)
        if len(self._leases) >= self._revoke_rate:
            self._spread_expiries(now, extend)

    def demote(self) -> None:
        """This member lost leadership: stop keeping time; every lease lives "forever" here."""
        self._primary = False
        for lease in self._leases.values():
            lease.expiry = None
        self._heap.clear()
        self._deadlines.clear()
        self._wake_all_waiters()

    def renew(self, lease_id: int) -> int:
        """A keep-alive on the leader: restart the lease's TTL and return it.

        Raises NotPrimaryError on a follower (the server forwards to the leader),
        ErrGRPCLeaseNotFound for an unknown lease, and LeaseExpiredError for a lease that
        has expired but is not revoked yet (`arenew` waits for that to settle).
        """
        if not self._primary:
            raise NotPrimaryError()
        lease = self._leases.get(lease_id)
        if lease is None:
            raise errors.ErrGRPCLeaseNotFound
        now = self._clock()
        if lease.expiry is not None and lease.expiry <= now:
            raise LeaseExpiredError(lease_id)
        self._refresh(lease, now, 0.0)
        return lease.ttl

    async def arenew(self, lease_id: int) -> int:
        """`renew`, but for an expired lease wait until its revoke applies (-> ErrGRPCLeaseNotFound)
        or this member is demoted (-> NotPrimaryError), so a client never revives a lease that
        the cluster is revoking."""
        try:
            return self.renew(lease_id)
        except LeaseExpiredError:
            waiter = self._settled.setdefault(lease_id, asyncio.Event())
            await waiter.wait()
        if lease_id not in self._leases:
            raise errors.ErrGRPCLeaseNotFound
        if not self._primary:
            raise NotPrimaryError()
        return self.renew(lease_id)

    def expired(self, now: float | None = None, limit: int | None = None) -> list[int]:
        """Leases past their expiry, for the server to revoke through Raft.

        A lease handed out here is handed out again only after the retry interval, in case
        its revoke got lost (e.g. dropped by a leader change). Empty unless primary.
        """
        if not self._primary:
            return []
        if now is None:
            now = self._clock()
        if limit is None:
            limit = max(1, self._revoke_rate // 2)
        found: list[int] = []
        while self._heap and len(found) < limit:
            deadline, lease_id = self._heap[0]
            if deadline > now:
                break
            heapq.heappop(self._heap)
            if self._deadlines.get(lease_id) != deadline:
                continue  # stale: renewed or revoked since
            lease = self._leases[lease_id]
            if lease.expiry is None or lease.expiry > now:
                if lease.expiry is not None:
                    self._schedule(lease_id, lease.expiry)
                continue
            self._schedule(lease_id, now + self._retry_interval)
            found.append(lease_id)
        return found

    # --- internals ---

    def _refresh(self, lease: Lease, now: float, extend: float) -> None:
        lease.expiry = now + extend + lease.ttl
        self._schedule(lease.id, lease.expiry)

    def _schedule(self, lease_id: int, deadline: float) -> None:
        self._deadlines[lease_id] = deadline
        heapq.heappush(self._heap, (deadline, lease_id))

    def _spread_expiries(self, now: float, extend: float) -> None:
        target_per_second = max(1, (3 * self._revoke_rate) // 4)
        ordered = self.leases()
        base = (ordered[0].expiry or now) - now
        next_window = base + 1.0
        expiring = 0
        for lease in ordered:
            remaining = (lease.expiry or now) - now
            if remaining > next_window:
                base, next_window, expiring = remaining, remaining + 1.0, 1
                continue
            expiring += 1
            if expiring <= target_per_second:
                continue
            delay = expiring / target_per_second - (remaining - base)
            next_window = base + delay
            self._refresh(lease, now, delay + extend)

    def _wake_all_waiters(self) -> None:
        for waiter in self._settled.values():
            waiter.set()
        self._settled.clear()
