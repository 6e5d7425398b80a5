"""`pyetcd snapshot restore`: turn a snapshot file into a data directory for a new cluster.

As `etcdctl snapshot restore` does for etcd: the keyspace and leases come from the snapshot;
the membership is replaced by the new --initial-cluster, and the Raft log starts afresh at a
snapshot point that already contains those members, so every restored member agrees on it.
"""

from __future__ import annotations

import argparse
import hashlib
import os

from pyetcd.apply import CONF_STATE_KEY, RAFT_BUCKET, encode_conf_state
from pyetcd.config import ConfigError, parse_initial_cluster, parse_urls
from pyetcd.identity import Identity
from pyetcd.ids import cluster_id as derive_cluster_id
from pyetcd.ids import member_id as derive_member_id
from pyetcd.membership import MEMBERS_BUCKET, REMOVED_BUCKET, Member
from raft.core import ConfState, HardState, Snapshot, SnapshotMetadata
from storage.mvcc import MvccStore
from storage.raftlog import DurableLog

SHA256_SIZE = 32


def add_restore_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("filename", help="The snapshot file (as `etcdctl snapshot save` wrote it).")
    parser.add_argument("--data-dir", default="", help="Path to the data directory (default: <name>.etcd).")
    parser.add_argument("--wal-dir", default="", help="Path to the Raft log directory.")
    parser.add_argument("--name", default="default", help="Human-readable name for this member.")
    parser.add_argument("--initial-cluster", default="default=http://localhost:2380")
    parser.add_argument("--initial-cluster-token", default="etcd-cluster")
    parser.add_argument("--initial-advertise-peer-urls", default="http://localhost:2380")
    parser.add_argument("--skip-hash-check", action="store_true",
                        help="Ignore the snapshot's integrity hash (for a copy taken from a data directory).")


def split_snapshot_file(blob: bytes, skip_hash_check: bool) -> bytes:
    """The store bytes of a snapshot file, after checking the SHA-256 that ends it."""
    if skip_hash_check:
        return blob
    if len(blob) <= SHA256_SIZE:
        raise ValueError("snapshot file is too small to hold a snapshot")
    data, digest = blob[:-SHA256_SIZE], blob[-SHA256_SIZE:]
    if hashlib.sha256(data).digest() != digest:
        raise ValueError("expected sha256 checksum does not match the snapshot data")
    return data


def restore_snapshot(args: argparse.Namespace) -> None:
    pairs = parse_initial_cluster(args.initial_cluster)
    own_urls = parse_urls(args.initial_advertise_peer_urls, "initial-advertise-peer-urls")
    urls_by_name: dict[str, list[str]] = {}
    for name, url in pairs:
        urls_by_name.setdefault(name, []).append(url)
    if args.name not in urls_by_name:
        raise ConfigError(f'couldn\'t find local name "{args.name}" in the initial cluster configuration')
    if sorted(urls_by_name[args.name]) != sorted(own_urls):
        raise ConfigError(f"--initial-cluster has {args.name}={','.join(urls_by_name[args.name])} but missing "
                          f"from --initial-advertise-peer-urls={','.join(own_urls)}")
    data_dir = args.data_dir or f"{args.name}.etcd"
    if os.path.exists(data_dir):
        raise ConfigError(f"data-dir {data_dir!r} exists")
    with open(args.filename, "rb") as fh:
        data = split_snapshot_file(fh.read(), args.skip_hash_check)

    members = [Member(derive_member_id(urls, args.initial_cluster_token), tuple(urls), name=name)
               for name, urls in urls_by_name.items()]
    me = next(m for m in members if m.name == args.name)
    cluster = derive_cluster_id([m.id for m in members])
    member_dir = os.path.join(data_dir, "member")
    store_dir = os.path.join(member_dir, "snap", "db")
    os.makedirs(os.path.dirname(store_dir), exist_ok=True)
    MvccStore.restore(store_dir, data)

    restored_index = len(members)
    conf_state = ConfState(voters=tuple(sorted(m.id for m in members)))
    store = MvccStore(store_dir)
    try:
        with store.write(consistent_index=restored_index, consistent_term=1) as w:
            for bucket in (MEMBERS_BUCKET, REMOVED_BUCKET, "alarm"):
                for key, _ in store.meta_items(bucket):
                    w.meta_delete(bucket, key)
            for member in members:
                w.meta_put(MEMBERS_BUCKET, member.store_key(), member.encode())
            w.meta_put(RAFT_BUCKET, CONF_STATE_KEY, encode_conf_state(conf_state))
        store.sync()
    finally:
        store.close()

    raft_log = DurableLog.open(args.wal_dir or os.path.join(member_dir, "wal"))
    try:
        snapshot = Snapshot(SnapshotMetadata(index=restored_index, term=1, conf_state=conf_state))
        raft_log.save(HardState(term=1, vote=0, commit=restored_index), [], snapshot)
    finally:
        raft_log.close()

    Identity(me.id, cluster).save(member_dir)
