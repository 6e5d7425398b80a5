"""`pyetcd snapshot status FILE`: what `etcdctl snapshot status` prints about an etcd snapshot.

The hash is CRC-32C over every top-level bucket's name and then each of its keys and values (a nested
bucket counts as a key with an empty value), in bbolt's key order; the revision is the newest in the
``key`` bucket; the size is the pages in use (clientv3/snapshot's Status).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

from storage.bbolt import BoltReader
from storage.mvcc.crc32c import Crc32c

WRITE_OUT_FORMATS = ("simple", "table", "json", "fields")


class UnsupportedOutput(ValueError):
    """A -w value etcdctl refuses for this command (its exit status 4, ExitBadFeature)."""

    exit_status = 4


@dataclass(frozen=True, slots=True)
class SnapshotStatus:
    hash: int
    revision: int
    total_key: int
    total_size: int


def snapshot_status(path: str) -> SnapshotStatus:
    """The status of the database in ``path`` (a trailer after it is ignored, as bbolt ignores it)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"stat {path}: no such file or directory")
    with open(path, "rb") as fh:
        reader = BoltReader(fh.read())
    root = reader.read()
    crc = Crc32c()
    revision = total = 0
    for name in sorted(root.items.keys() | root.buckets.keys()):
        bucket = root.buckets.get(name)
        if bucket is None:
            raise ValueError(f"cannot get hash of bucket {name.decode(errors='replace')}")
        crc.write(name)
        keys = sorted(bucket.items.keys() | bucket.buckets.keys())
        for key in keys:
            crc.write(key)
            crc.write(bucket.items.get(key, b""))
        if name == b"key" and keys:
            revision = int.from_bytes(keys[-1][:8], "big", signed=True)
        total += len(keys)
    return SnapshotStatus(crc.value, revision, total, reader.size)


def humanize_bytes(size: int) -> str:
    """go-humanize's Bytes: SI units, one decimal under 10."""
    if size < 10:
        return f"{size} B"
    exponent = min(int(math.floor(math.log(size) / math.log(1000))), 6)
    value = math.floor(size / 1000**exponent * 10 + 0.5) / 10
    unit = ("B", "kB", "MB", "GB", "TB", "PB", "EB")[exponent]
    return f"{value:.0f} {unit}" if value >= 10 else f"{value:.1f} {unit}"


def format_status(status: SnapshotStatus, write_out: str) -> str:
    """The status as etcdctl's -w simple/table/json/fields print it."""
    row = [f"{status.hash:x}", str(status.revision), str(status.total_key), humanize_bytes(status.total_size)]
    if write_out == "simple":
        return ", ".join(row) + "\n"
    if write_out == "json":
        return json.dumps({"hash": status.hash, "revision": status.revision, "totalKey": status.total_key,
                           "totalSize": status.total_size}, separators=(",", ":")) + "\n"
    if write_out == "fields":
        return (f'"Hash" : {status.hash}\n"Revision" : {status.revision}\n"Keys" : {status.total_key}\n'
                f'"Size" : {status.total_size}\n')
    if write_out == "table":
        return table(["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"], row)
    if write_out == "protobuf":
        raise UnsupportedOutput("protobuf not supported as output format")
    raise UnsupportedOutput("unsupported output format")


def table(header: list[str], row: list[str]) -> str:
    """One-row table as etcdctl's tablewriter draws it: centred header, right-aligned cells."""
    widths = [max(len(h), len(c)) for h, c in zip(header, row, strict=True)]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def centred(text: str, width: int) -> str:
        left = (width - len(text)) // 2
        return " " * left + text + " " * (width - len(text) - left)

    head = "|" + "|".join(f" {centred(h, w)} " for h, w in zip(header, widths, strict=True)) + "|"
    body = "|" + "|".join(f" {c.rjust(w)} " for c, w in zip(row, widths, strict=True)) + "|"
    return "\n".join([rule, head, rule, body, rule]) + "\n"
