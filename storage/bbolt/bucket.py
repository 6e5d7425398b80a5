"""A bucket as the bbolt reader returns it and the writer takes it: keys, values and nested buckets."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Bucket:
    """A bucket: its plain key/value pairs and its nested buckets (their keys never overlap)."""

    items: dict[bytes, bytes] = field(default_factory=dict)
    buckets: dict[bytes, Bucket] = field(default_factory=dict)
    sequence: int = 0

    def bucket(self, name: bytes) -> Bucket:
        """The nested bucket ``name``, made empty if missing."""
        return self.buckets.setdefault(name, Bucket())

    def key_count(self) -> int:
        """Plain keys in this bucket and all below it."""
        return len(self.items) + sum(child.key_count() for child in self.buckets.values())
