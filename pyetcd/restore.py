"""`pyetcd snapshot restore`: turn a snapshot file into a data directory for a new cluster.

As `etcdctl snapshot restore` does for etcd: the keyspace and leases come from the snapshot;
the membership is replaced by the new --initial-cluster, and the Raft log starts afresh at a
snapshot point that already contains those members, so every restored member agrees on it.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from pyetcd.apply import ALARM_BUCKET, CONF_STATE_KEY, RAFT_BUCKET, encode_conf_state
from pyetcd.config import DEFAULT_QUOTA_BYTES, ConfigError, parse_initial_cluster, parse_urls
from pyetcd.identity import Identity
from pyetcd.ids import cluster_id as derive_cluster_id
from pyetcd.ids import member_id as derive_member_id
from pyetcd.membership import CLUSTER_BUCKET, MEMBERS_BUCKET, REMOVED_BUCKET, Member
from pyetcd.progress import Progress
from pyetcd.snapshot_file import contents_of_etcd_database, is_bbolt, strip_trailer
from raft.core import ConfState, HardState, Snapshot, SnapshotMetadata
from storage.mvcc import MvccStore
from storage.mvcc.backend import CONSISTENT_INDEX, CONSISTENT_TERM, encode_u64
from storage.mvcc.contents import StoreContents, write_contents
from storage.mvcc.kvstore import default_map_size
from storage.raftlog import DurableLog


def add_restore_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("filename", nargs="*", help="The snapshot file (as `etcdctl snapshot save` wrote it).")
    add_member_arguments(parser)
    parser.add_argument("--skip-hash-check", action="store_true",
                        help="Ignore the snapshot's integrity hash (for a copy taken from a data directory).")


def add_member_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that describe the new member and cluster (etcdctl snapshot restore's)."""
    parser.add_argument("--data-dir", default="", help="Path to the data directory (default: <name>.etcd).")
    parser.add_argument("--wal-dir", default="", help="Path to the Raft log directory.")
    parser.add_argument("--name", default="default", help="Human-readable name for this member.")
    parser.add_argument("--initial-cluster", default="default=http://localhost:2380")
    parser.add_argument("--initial-cluster-token", default="etcd-cluster")
    parser.add_argument("--initial-advertise-peer-urls", default="http://localhost:2380")


def restore_snapshot(args: argparse.Namespace) -> None:
    """`pyetcd snapshot restore`: an etcd snapshot (bbolt) or a pyetcd one (LMDB), trailer checked as etcd does."""
    check_member_arguments(args)
    with open(args.filename[0], "rb") as fh:
        data = strip_trailer(fh.read(), args.skip_hash_check)
    if is_bbolt(data):
        build_data_dir(args, contents_of_etcd_database(data))
    else:
        build_data_dir(args, data)


def check_member_arguments(args: argparse.Namespace) -> None:
    """Refuse bad cluster flags and existing directories before any file is read or written."""
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
    # As etcdctl, never into a directory that exists: it may belong to a running member.
    if os.path.exists(data_dir):
        raise ConfigError(f'data-dir "{data_dir}" exists')
    if args.wal_dir and os.path.exists(args.wal_dir):
        raise ConfigError(f'wal-dir "{args.wal_dir}" exists')


def build_data_dir(args: argparse.Namespace, source: StoreContents | bytes) -> None:
    """Make the member's data directory from a store's records (or pyetcd's own store bytes); nothing is
    left behind if that fails part way."""
    data_dir = args.data_dir or f"{args.name}.etcd"
    try:
        _build_data_dir(args, data_dir, source)
    except BaseException:
        shutil.rmtree(data_dir, ignore_errors=True)
        if args.wal_dir:
            shutil.rmtree(args.wal_dir, ignore_errors=True)
        raise


def _build_data_dir(args: argparse.Namespace, data_dir: str, source: StoreContents | bytes) -> None:
    urls_by_name: dict[str, list[str]] = {}
    for name, url in parse_initial_cluster(args.initial_cluster):
        urls_by_name.setdefault(name, []).append(url)
    members = [Member(derive_member_id(urls, args.initial_cluster_token), tuple(urls), name=name)
               for name, urls in urls_by_name.items()]
    me = next(m for m in members if m.name == args.name)
    cluster = derive_cluster_id([m.id for m in members])
    member_dir = os.path.join(data_dir, "member")
    store_dir = os.path.join(member_dir, "snap", "db")
    os.makedirs(os.path.dirname(store_dir), exist_ok=True)
    restored_index = len(members)
    conf_state = ConfState(voters=tuple(sorted(m.id for m in members)))
    if isinstance(source, bytes):
        MvccStore.restore(store_dir, source)
        replace_membership(store_dir, members, conf_state, restored_index)
    else:
        # The new membership goes in with the records: no second pass over a large store.
        source.buckets[MEMBERS_BUCKET] = {m.store_key(): m.encode() for m in members}
        # Like etcd's restore, the cluster version is decided anew by the restored cluster's leader.
        for bucket in (REMOVED_BUCKET, ALARM_BUCKET, CLUSTER_BUCKET):
            source.buckets[bucket] = {}
        source.buckets.setdefault(RAFT_BUCKET, {})[CONF_STATE_KEY] = encode_conf_state(conf_state)
        source.meta[CONSISTENT_INDEX] = encode_u64(restored_index)
        source.meta[CONSISTENT_TERM] = encode_u64(1)
        progress = Progress("restoring")
        write_contents(Path(store_dir), source, map_size=default_map_size(DEFAULT_QUOTA_BYTES), progress=progress)
        progress.done(len(source.revisions), sum(len(kv) for _, kv in source.revisions))

    raft_log = DurableLog.open(args.wal_dir or os.path.join(member_dir, "wal"))
    try:
        snapshot = Snapshot(SnapshotMetadata(index=restored_index, term=1, conf_state=conf_state))
        raft_log.save(HardState(term=1, vote=0, commit=restored_index), [], snapshot)
    finally:
        raft_log.close()

    Identity(me.id, cluster).save(member_dir)


def replace_membership(store_dir: str, members: list[Member], conf_state: ConfState, restored_index: int) -> None:
    """In a restored pyetcd store: the new members instead of the old, no alarms nor cluster version, the
    restore's index."""
    store = MvccStore(store_dir)
    try:
        with store.write(consistent_index=restored_index, consistent_term=1) as w:
            for bucket in (MEMBERS_BUCKET, REMOVED_BUCKET, ALARM_BUCKET, CLUSTER_BUCKET):
                for key, _ in store.meta_items(bucket):
                    w.meta_delete(bucket, key)
            for member in members:
                w.meta_put(MEMBERS_BUCKET, member.store_key(), member.encode())
            w.meta_put(RAFT_BUCKET, CONF_STATE_KEY, encode_conf_state(conf_state))
        store.sync()
    finally:
        store.close()
