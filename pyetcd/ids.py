"""Member, cluster and request IDs, derived exactly as etcd derives them.

etcd names a member by the first 8 bytes (big-endian) of SHA-1 over its sorted peer URLs,
the cluster token and, for members added at runtime, the Unix time of the add; the cluster
ID is the same over the sorted member IDs. Matching this lets `etcdctl member list` print
the same IDs for pyetcd as for etcd started with the same flags.
"""

from __future__ import annotations

import hashlib
import itertools
import struct
import time


def _first_eight_bytes(digest: bytes) -> int:
    return int(struct.unpack(">Q", digest[:8])[0])


def member_id(peer_urls: list[str], cluster_token: str, added_at_unix: int | None = None) -> int:
    """The ID etcd gives a member with these peer URLs in a cluster with this token."""
    material = "".join(sorted(peer_urls)).encode() + cluster_token.encode()
    if added_at_unix is not None:
        material += str(added_at_unix).encode()
    return _first_eight_bytes(hashlib.sha1(material).digest())


def cluster_id(member_ids: list[int]) -> int:
    """The cluster ID etcd derives from the IDs of the initial members."""
    material = b"".join(struct.pack(">Q", mid) for mid in sorted(member_ids))
    return _first_eight_bytes(hashlib.sha1(material).digest())


def format_id(value: int) -> str:
    """IDs print as lower-case hex without padding, as etcd's types.ID does."""
    return format(value, "x")


class RequestIdGenerator:
    """Unique request IDs per member: member prefix, start time, then a counter (etcd's idutil shape)."""

    def __init__(self, member: int, now_ms: int | None = None) -> None:
        start_ms = int(time.time() * 1000) if now_ms is None else now_ms
        prefix = (member & 0xFFFF) << 48
        suffix = (start_ms & 0xFFFFFFFFFF) << 8
        self._counter = itertools.count(prefix | suffix)

    def next(self) -> int:
        return next(self._counter) & 0xFFFFFFFFFFFFFFFF
