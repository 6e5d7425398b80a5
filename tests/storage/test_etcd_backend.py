"""The store's records in etcd's buckets and back, and restores from either snapshot format, in process."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

from etcdpb.etcdserverpb import rpc_pb2
from etcdpb.leasepb import lease_pb2
from pyetcd import cli
from pyetcd.apply import alarm_key
from pyetcd.apply_kv import read_range
from pyetcd.etcd_backend import ETCD_BUCKETS, etcd_backend, store_contents
from pyetcd.membership import Member
from pyetcd.progress import Progress
from pyetcd.snapshot_file import contents_of_etcd_database, etcd_database
from storage.mvcc import MvccStore
from storage.mvcc.contents import StoreContents

MEMBER = Member(id=0x8E9E05C52164694D, peer_urls=("http://localhost:2380",), name="default",
                client_urls=("http://localhost:2379",))


def filled_store(path: Path) -> MvccStore:
    store = MvccStore(path, quota_bytes=64 * 1024**2)
    with store.write(consistent_index=7) as w:
        w.lease_grant(0x694D, 600)
        w.put(b"a", b"1")
        w.put(b"a", b"2")
        w.put(b"held", b"", 0x694D)
        w.delete_range(b"a", None)
        w.put(b"big", b"z" * 300_000)
        w.compact(2)
        w.meta_put("members", MEMBER.store_key(), MEMBER.encode())
        w.meta_put("members_removed", b"1234", b"")
        w.meta_put("alarm", alarm_key(MEMBER.id, rpc_pb2.NOSPACE), b"")
        w.meta_put("authUsers", b"alice", b"\n\x05alice")
        w.meta_put("cluster", b"clusterVersion", b"3.4.0")
    assert store.wait_compacted(2, timeout=10)
    return store


def test_store_records_land_in_etcds_buckets_in_etcds_encodings(tmp_path: Path) -> None:
    store = filled_store(tmp_path / "store")
    try:
        root = etcd_backend(store.contents())
    finally:
        store.close()
    assert sorted(root.buckets) == sorted(ETCD_BUCKETS)
    assert json.loads(root.buckets[b"members"].items[b"8e9e05c52164694d"]) == {
        "id": MEMBER.id, "peerURLs": ["http://localhost:2380"], "name": "default",
        "clientURLs": ["http://localhost:2379"]}
    assert root.buckets[b"members_removed"].items == {b"1234": b"removed"}
    assert root.buckets[b"cluster"].items == {b"clusterVersion": b"3.4.0"}
    lease = lease_pb2.Lease.FromString(root.buckets[b"lease"].items[(0x694D).to_bytes(8, "big")])
    assert (lease.ID, lease.TTL) == (0x694D, 600)
    alarm = rpc_pb2.AlarmMember.FromString(next(iter(root.buckets[b"alarm"].items)))
    assert (alarm.memberID, alarm.alarm) == (MEMBER.id, rpc_pb2.NOSPACE)
    assert root.buckets[b"meta"].items[b"consistent_index"] == (7).to_bytes(8, "big")
    assert root.buckets[b"meta"].items[b"finishedCompactRev"] == (2).to_bytes(8, "big") + b"_" + bytes(8)
    assert b"consistent_term" not in root.buckets[b"meta"].items  # etcd 3.4 has none
    tombstones = [rev for rev in root.buckets[b"key"].items if rev.endswith(b"t")]
    assert tombstones == [(5).to_bytes(8, "big") + b"_" + bytes(8) + b"t"]
    assert root.buckets[b"authUsers"].items == {b"alice": b"\n\x05alice"}
    assert root.buckets[b"auth"].items == {b"authRevision": (1).to_bytes(8, "big")}  # as etcd opens its auth store


def test_records_survive_the_trip_through_a_bbolt_file(tmp_path: Path) -> None:
    store = filled_store(tmp_path / "store")
    try:
        before = store.contents()
    finally:
        store.close()
    after = contents_of_etcd_database(etcd_database(before))
    assert after.revisions == before.revisions
    assert after.leases == before.leases
    assert {k: v for k, v in after.meta.items() if k != b"consistent_term"} == \
        {k: v for k, v in before.meta.items() if k != b"consistent_term"}
    for bucket in ("members", "members_removed", "alarm", "authUsers"):
        assert after.buckets[bucket] == before.buckets[bucket], bucket


def test_a_store_built_from_etcds_buckets_serves_the_same_history(tmp_path: Path) -> None:
    store = filled_store(tmp_path / "store")
    try:
        contents = store.contents()
        expected = [read_range(store, rpc_pb2.RangeRequest(key=b"\0", range_end=b"\0", revision=rev)).kvs
                    for rev in (2, 4, 5, 6)]
        expected_hash = store.hash_kv(0)
    finally:
        store.close()
    snapshot = tmp_path / "snapshot.db"
    data = etcd_database(contents)
    snapshot.write_bytes(data + hashlib.sha256(data).digest())
    restored_dir = tmp_path / "restored.etcd"
    assert cli.main(["snapshot", "restore", str(snapshot), f"--data-dir={restored_dir}"]) == 0
    restored = MvccStore(restored_dir / "member" / "snap" / "db")
    try:
        assert [read_range(restored, rpc_pb2.RangeRequest(key=b"\0", range_end=b"\0", revision=rev)).kvs
                for rev in (2, 4, 5, 6)] == expected
        assert restored.hash_kv(0) == expected_hash
        assert restored.leases() == [(0x694D, 600)]
        assert restored.meta_items("alarm") == []  # a restore starts without alarms, as etcd's does
    finally:
        restored.close()


def test_pyetcds_own_older_snapshots_still_restore(tmp_path: Path) -> None:
    store = filled_store(tmp_path / "store")
    try:
        data = store.snapshot_bytes()
        expected = store.hash_kv(0)
    finally:
        store.close()
    snapshot = tmp_path / "old-format.db"
    snapshot.write_bytes(data + hashlib.sha256(data).digest())
    assert cli.main(["snapshot", "restore", str(snapshot), f"--data-dir={tmp_path / 'old.etcd'}"]) == 0
    restored = MvccStore(tmp_path / "old.etcd" / "member" / "snap" / "db")
    try:
        assert restored.hash_kv(0) == expected
    finally:
        restored.close()


def test_records_etcd_could_not_have_written_are_refused() -> None:
    root = etcd_backend(StoreContents())
    assert root.buckets[b"cluster"].items == {}, "a store whose cluster never decided a version has none"
    root.buckets[b"key"].items[b"not a revision"] = b""
    try:
        store_contents(root)
    except ValueError as e:
        assert "key bucket" in str(e)
    else:
        raise AssertionError("a bad revision key was accepted")


def test_progress_is_silent_off_a_terminal() -> None:
    stream = io.StringIO()
    progress = Progress("restoring", stream=stream)
    progress(10, 1000)
    progress.done(10, 1000)
    assert stream.getvalue() == ""
