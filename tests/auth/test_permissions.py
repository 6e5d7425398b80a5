"""Key-range permissions merge and cover requests as etcd's range permission cache does."""

from __future__ import annotations

from etcdpb.authpb import auth_pb2
from pyetcd.auth.permissions import READ, READWRITE, WRITE, RangePermissions


def perm(kind: int, key: bytes, range_end: bytes = b"") -> auth_pb2.Permission:
    return auth_pb2.Permission(permType=kind, key=key, range_end=range_end)  # type: ignore[arg-type]


def test_single_key_permission_allows_that_key_only() -> None:
    perms = RangePermissions.merge([perm(READ, b"a")])
    assert perms.allows(b"a", b"", READ)
    assert not perms.allows(b"a0", b"", READ)
    assert not perms.allows(b"a", b"b", READ)  # the range [a, b) holds more than a
    assert not perms.allows(b"a", b"", WRITE)


def test_prefix_permission_covers_keys_and_ranges_inside_it() -> None:
    perms = RangePermissions.merge([perm(READWRITE, b"foo/", b"foo0")])
    assert perms.allows(b"foo/x", b"", READ) and perms.allows(b"foo/x", b"", WRITE)
    assert perms.allows(b"foo/", b"foo0", READ)
    assert perms.allows(b"foo/a", b"foo/b", WRITE)
    assert not perms.allows(b"foo/", b"foo1", READ)
    assert not perms.allows(b"fo", b"", READ)


def test_from_key_permission_covers_everything_after_its_key() -> None:
    perms = RangePermissions.merge([perm(READ, b"m", b"\x00")])
    assert perms.allows(b"zzz", b"", READ)
    assert perms.allows(b"m", b"\x00", READ)  # a from-key request
    assert perms.allows(b"n", b"\x00", READ)
    assert not perms.allows(b"l", b"\x00", READ)
    assert not perms.allows(b"a", b"", READ)


def test_adjacent_ranges_from_several_roles_merge_but_a_gap_does_not() -> None:
    touching = RangePermissions.merge([perm(READ, b"a", b"c"), perm(READ, b"c", b"e")])
    assert touching.allows(b"a", b"e", READ)
    gap = RangePermissions.merge([perm(READ, b"a", b"b"), perm(READ, b"c", b"e")])
    assert not gap.allows(b"a", b"e", READ)
    assert gap.allows(b"c", b"d", READ)


def test_read_and_write_are_kept_apart() -> None:
    perms = RangePermissions.merge([perm(WRITE, b"w"), perm(READ, b"r")])
    assert perms.allows(b"w", b"", WRITE) and not perms.allows(b"w", b"", READ)
    assert perms.allows(b"r", b"", READ) and not perms.allows(b"r", b"", WRITE)


def test_all_keys_need_a_permission_from_the_smallest_key() -> None:
    everything = RangePermissions.merge([perm(READ, b"\x00", b"\x00")])
    assert everything.allows(b"\x00", b"\x00", READ)
    assert not RangePermissions.merge([perm(READ, b"a", b"\x00")]).allows(b"\x00", b"\x00", READ)
