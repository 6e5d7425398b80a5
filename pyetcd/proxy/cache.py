"""The proxy's cache of Range answers, as etcd's grpc-proxy keeps one.

Every Range answer is remembered under its request (made serializable); only serializable Ranges are
answered from it, since they may be stale anyway. A write through the proxy drops the cached answers
whose range it touches, and a compaction makes cached answers at older revisions unusable.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from etcdpb.etcdserverpb import rpc_pb2
from pyetcd.errors import ErrGRPCCompacted

DEFAULT_MAX_ENTRIES = 2048
END_OF_KEYSPACE = b"\x00"


@dataclass(frozen=True, slots=True)
class KeyInterval:
    """A key or the range [start, end); `end` None means the single key `start`, b"" means no end."""

    start: bytes
    end: bytes | None

    @classmethod
    def of(cls, key: bytes, range_end: bytes) -> KeyInterval:
        if not range_end:
            return cls(key, None)
        return cls(key, b"" if range_end == END_OF_KEYSPACE else range_end)

    def _upper_contains(self, key: bytes) -> bool:
        return self.end == b"" or (self.end is not None and key < self.end)

    def intersects(self, other: KeyInterval) -> bool:
        if self.end is None and other.end is None:
            return self.start == other.start
        if self.end is None:
            return other.start <= self.start and other._upper_contains(self.start)
        if other.end is None:
            return self.start <= other.start and self._upper_contains(other.start)
        # Two half-open ranges overlap when each starts before the other ends.
        return self._upper_contains(other.start) and other._upper_contains(self.start)


def cache_key(request: rpc_pb2.RangeRequest) -> bytes:
    """The identity of a Range request in the cache: its serializable form's bytes."""
    key_request = rpc_pb2.RangeRequest()
    key_request.CopyFrom(request)
    key_request.serializable = True
    return key_request.SerializeToString(deterministic=True)


class RangeCache:
    """LRU of Range answers with an index from key ranges to entries for invalidation."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self._max_entries = max_entries
        # cache key -> serialized RangeResponse; stored as bytes so callers can never alter an entry.
        self._entries: OrderedDict[bytes, bytes] = OrderedDict()
        # Only answers at the current revision (revision 0) can go stale through writes.
        self._ranges: dict[bytes, KeyInterval] = {}
        self.compacted_revision = -1
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, request: rpc_pb2.RangeRequest, response: rpc_pb2.RangeResponse) -> None:
        if 0 < request.revision <= self.compacted_revision:
            return
        key = cache_key(request)
        self._entries[key] = response.SerializeToString()
        self._entries.move_to_end(key)
        if request.revision == 0:
            self._ranges[key] = KeyInterval.of(request.key, request.range_end)
        while len(self._entries) > self._max_entries:
            evicted, _ = self._entries.popitem(last=False)
            self._ranges.pop(evicted, None)

    def get(self, request: rpc_pb2.RangeRequest) -> rpc_pb2.RangeResponse | None:
        """A fresh copy of the cached answer, or None; raises ErrGRPCCompacted for a compacted revision."""
        key = cache_key(request)
        if 0 < request.revision < self.compacted_revision:
            self._drop(key)
            raise ErrGRPCCompacted
        data = self._entries.get(key)
        if data is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return rpc_pb2.RangeResponse.FromString(data)

    def invalidate(self, key: bytes, range_end: bytes = b"") -> None:
        """Drop every current-revision answer whose range meets [key, range_end)."""
        touched = KeyInterval.of(key, range_end)
        for cached in [k for k, interval in self._ranges.items() if interval.intersects(touched)]:
            self._drop(cached)

    def compact(self, revision: int) -> None:
        self.compacted_revision = max(self.compacted_revision, revision)

    def _drop(self, key: bytes) -> None:
        self._entries.pop(key, None)
        self._ranges.pop(key, None)
