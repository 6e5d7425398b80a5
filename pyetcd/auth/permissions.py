"""Key-range permissions merged per user, checked as etcd's range permission cache checks them.

A role grants READ, WRITE or READWRITE on a single key (no range end), a range [key, range_end)
or every key from `key` on (range end "\\x00"). A user's roles are merged into one set of read
intervals and one of write intervals; a request is allowed when its key lies in one interval
(a single key) or when its whole range is covered by intervals that touch end to end.

Interval ends follow etcd's "affine" byte order: an empty end means "no end" and sorts after
every key, so [k, "") is everything from k on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from etcdpb.authpb import auth_pb2

READ = auth_pb2.Permission.READ
WRITE = auth_pb2.Permission.WRITE
READWRITE = auth_pb2.Permission.READWRITE

FROM_KEY = b"\x00"
"""A range end meaning "every key from the start key on"."""


def _affine(value: bytes) -> tuple[int, bytes]:
    """Sort key of a bound in etcd's affine order: the empty bound is greater than every key."""
    return (1, b"") if not value else (0, value)


@dataclass(frozen=True, slots=True)
class Interval:
    """A half-open key interval [begin, end); an empty `end` is unbounded."""

    begin: bytes
    end: bytes

    @classmethod
    def point(cls, key: bytes) -> Interval:
        return cls(key, key + b"\x00")

    def overlaps(self, other: Interval) -> bool:
        """etcd's Interval.Compare == 0: neither lies wholly left or right of the other."""
        left_of = _affine(self.begin) < _affine(other.begin) and _affine(self.end) <= _affine(other.begin)
        right_of = _affine(self.begin) >= _affine(other.end)
        return not (left_of or right_of)


def permission_interval(key: bytes, range_end: bytes) -> Interval:
    """The interval a granted permission covers."""
    if not range_end:
        return Interval.point(key)
    return Interval(key, b"" if range_end == FROM_KEY else range_end)


def request_interval(key: bytes, range_end: bytes) -> Interval:
    """The interval a ranged request touches (range end "\\x00" means "from key on")."""
    return Interval(key, b"" if range_end == FROM_KEY else range_end)


@dataclass(slots=True)
class IntervalSet:
    """Intervals kept sorted by start, as etcd's interval tree visits them."""

    intervals: list[Interval] = field(default_factory=list)

    def add(self, interval: Interval) -> None:
        self.intervals.append(interval)
        self.intervals.sort(key=lambda iv: (_affine(iv.begin), _affine(iv.end)))

    def intersects(self, interval: Interval) -> bool:
        return any(iv.overlaps(interval) for iv in self.intervals)

    def contains(self, interval: Interval) -> bool:
        """Whether the intervals touching `interval` cover it without a gap (etcd's Contains)."""
        touching = [iv for iv in self.intervals if iv.overlaps(interval)]
        if not touching:
            return False
        min_begin, max_end = touching[0].begin, touching[0].end
        for iv in touching[1:]:
            if _affine(max_end) < _affine(iv.begin):
                return False
            if _affine(iv.end) > _affine(max_end):
                max_end = iv.end
        return _affine(max_end) >= _affine(interval.end) and _affine(min_begin) <= _affine(interval.begin)


@dataclass(slots=True)
class RangePermissions:
    """One user's permissions from all of their roles (etcd's unifiedRangePermissions)."""

    read: IntervalSet = field(default_factory=IntervalSet)
    write: IntervalSet = field(default_factory=IntervalSet)

    @classmethod
    def merge(cls, permissions: Iterable[auth_pb2.Permission]) -> RangePermissions:
        merged = cls()
        for perm in permissions:
            interval = permission_interval(perm.key, perm.range_end)
            if perm.permType in (READ, READWRITE):
                merged.read.add(interval)
            if perm.permType in (WRITE, READWRITE):
                merged.write.add(interval)
        return merged

    def allows(self, key: bytes, range_end: bytes, perm_type: int) -> bool:
        """Whether `perm_type` (READ or WRITE) is granted on the key or the whole range."""
        intervals = self.read if perm_type == READ else self.write
        if not range_end:
            return intervals.intersects(Interval.point(key))
        return intervals.contains(request_interval(key, range_end))
