"""Snapshots move between real etcd and pyetcd, both ways, with the real etcdctl and etcd.

Each round trip writes the same history (several revisions per key, values from 0 bytes to 1 MiB,
deletions, a compaction, leases with keys) to a source member, moves it through snapshot files to the
other server and back, and checks every member serves the same thing: `endpoint hashkv` and
`get --prefix ""` at several revisions, and every lease with its TTL and keys.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc

from etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from etcdpb.mvccpb import kv_pb2
from pyetcd.etcd_backend import ETCD_BUCKETS
from pyetcd.snapshot_file import contents_of_etcd_database, strip_trailer
from storage.bbolt import read_database
from tests.helpers.servers import (
    PYETCD_BINARY,
    ServerProcess,
    StartServer,
    error_lines,
    etcdctl_env,
    free_port,
)

VALUE_SIZES = (0, 1, 100, 4096, 100_000, 1024 * 1024)
TOKEN = "moved-token"


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def etcdctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["etcdctl", *args], capture_output=True, text=True, timeout=120, env=etcdctl_env())


def pyetcd(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PYETCD_BINARY), *args], capture_output=True, text=True, timeout=300, **kwargs)


def write_history(endpoint: str) -> list[int]:
    """The shared workload; returns the revisions to compare at (the compacted one first)."""
    with grpc.insecure_channel(endpoint, options=[("grpc.max_send_message_length", 8 << 20)]) as channel:
        kv, lessor = rpc_pb2_grpc.KVStub(channel), rpc_pb2_grpc.LeaseStub(channel)
        ends: list[int] = []
        for generation in range(3):
            for i, size in enumerate(VALUE_SIZES):
                kv.Put(rpc_pb2.PutRequest(key=b"/size/%d" % i, value=bytes([65 + generation]) * size))
            for i in range(20):
                response = kv.Put(rpc_pb2.PutRequest(key=b"/many/%02d" % i, value=b"g%d" % generation))
            ends.append(response.header.revision)
        kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"/many/0", range_end=b"/many/1"))
        kv.Put(rpc_pb2.PutRequest(key=b"/many/05", value=b"again"))
        with_keys = lessor.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=600)).ID
        lessor.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=3000))
        for key in (b"/leased/a", b"/leased/b"):
            kv.Put(rpc_pb2.PutRequest(key=key, value=b"held", lease=with_keys))
        kv.Compact(rpc_pb2.CompactionRequest(revision=ends[1], physical=True))
        latest = kv.Put(rpc_pb2.PutRequest(key=b"/after/compaction", value=b"x")).header.revision
    return [ends[1], ends[2], latest]


def served(server: ServerProcess, revisions: list[int]) -> dict[str, Any]:
    """What a member serves: the keyspace and its hash at each revision, and its leases."""
    seen: dict[str, Any] = {}
    for revision in revisions:
        got = as_json(server.etcdctl("get", "--prefix", "", f"--rev={revision}", "-w", "json", timeout=60))
        seen[f"kvs@{revision}"] = got["kvs"]
        if revision == revisions[0]:
            continue  # the compacted revision: readable, but etcd hashes only above it
        hashed = as_json(server.etcdctl("endpoint", "hashkv", f"--rev={revision}", "-w", "json"))[0]["HashKV"]
        seen[f"hashkv@{revision}"] = (hashed["hash"], hashed["compact_revision"])
    seen["revision"] = got["header"]["revision"]
    leases = as_json(server.etcdctl("lease", "list", "-w", "json"))["leases"] or []
    for lease in sorted(leases, key=lambda item: item["id"]):
        ttl = as_json(server.etcdctl("lease", "timetolive", f"{lease['id']:x}", "--keys", "-w", "json"))
        seen[f"lease {lease['id']:x}"] = (ttl["granted-ttl"], sorted(ttl.get("keys") or []))
    return seen


@contextmanager
def restored_member(binary: str, tmp_path: Path, snapshot: Path, name: str) -> Iterator[ServerProcess]:
    """Restore ``snapshot`` with ``binary``'s own tool, then run a member on it (stopped on leaving)."""
    peer_port = free_port()
    peer_url = f"http://127.0.0.1:{peer_port}"
    data_dir = tmp_path / f"{name}.etcd"
    flags = [f"--data-dir={data_dir}", f"--name={name}", f"--initial-cluster={name}={peer_url}",
             f"--initial-cluster-token={TOKEN}", f"--initial-advertise-peer-urls={peer_url}"]
    if binary == "etcd":
        restored = etcdctl("snapshot", "restore", str(snapshot), *flags)
    else:
        restored = pyetcd("snapshot", "restore", str(snapshot), *flags)
    assert restored.returncode == 0, restored.stderr
    server = ServerProcess(binary=binary, name=name, data_dir=data_dir, client_port=free_port(),
                           peer_port=peer_port, extra_args=[f"--initial-cluster-token={TOKEN}"])
    try:
        yield server.start()
    finally:
        server.stop()


def save_snapshot(server: ServerProcess, path: Path) -> Path:
    saved = server.etcdctl("snapshot", "save", str(path), timeout=120)
    assert saved.returncode == 0, saved.stderr
    return path


def assert_status_as_etcdctl_prints_it(snapshot: Path,
                                       formats: tuple[str, ...] = ("simple", "table", "json", "fields", "protobuf")
                                       ) -> None:
    for write_out in formats:
        theirs = etcdctl("snapshot", "status", str(snapshot), "-w", write_out)
        ours = pyetcd("snapshot", "status", str(snapshot), "-w", write_out)
        assert (ours.returncode, ours.stdout, error_lines(ours.stderr)) == \
            (theirs.returncode, theirs.stdout, error_lines(theirs.stderr)), write_out


def test_etcd_to_pyetcd_to_etcd(start_server: StartServer, tmp_path: Path) -> None:
    source = start_server("etcd", name="source")
    revisions = write_history(source.endpoint)
    for args in (("user", "add", "alice:secret"), ("role", "add", "reader"),
                 ("role", "grant-permission", "reader", "read", "/many/"), ("user", "grant-role", "alice", "reader")):
        assert source.etcdctl(*args).returncode == 0
    expected = served(source, revisions)
    from_etcd = save_snapshot(source, tmp_path / "from-etcd.db")
    assert_status_as_etcdctl_prints_it(from_etcd)

    with restored_member("pyetcd", tmp_path, from_etcd, "py") as py:
        assert served(py, revisions) == expected
        from_pyetcd = save_snapshot(py, tmp_path / "from-pyetcd.db")
    assert_status_as_etcdctl_prints_it(from_pyetcd, ("json",))
    with restored_member("etcd", tmp_path, from_pyetcd, "back") as back:
        assert served(back, revisions) == expected
        # Users and roles rode along untouched, though pyetcd does not serve auth itself.
        assert as_json(back.etcdctl("user", "get", "alice", "-w", "json"))["roles"] == ["reader"]
        perms = as_json(back.etcdctl("role", "get", "reader", "-w", "json"))["perm"]
        assert [base64.b64decode(perm["key"]) for perm in perms] == [b"/many/"]
        # etcd's bbolt goes on writing into the pages pyetcd wrote: changes, a compaction, a defragment.
        assert back.etcdctl("put", "/size/5", "small now").returncode == 0
        assert back.etcdctl("del", "--prefix", "/many/").returncode == 0
        assert back.etcdctl("compact", str(revisions[-1] + 1)).returncode == 0
        assert back.etcdctl("defrag").returncode == 0
        keys = as_json(back.etcdctl("get", "--prefix", "/", "--keys-only", "-w", "json"))["kvs"]
        assert [base64.b64decode(kv["key"]) for kv in keys] == \
            [b"/after/compaction", b"/leased/a", b"/leased/b"] + [b"/size/%d" % i for i in range(len(VALUE_SIZES))]


def test_pyetcd_to_etcd_to_pyetcd(start_server: StartServer, tmp_path: Path) -> None:
    source = start_server("pyetcd", name="source")
    revisions = write_history(source.endpoint)
    expected = served(source, revisions)
    from_pyetcd = save_snapshot(source, tmp_path / "from-pyetcd.db")
    assert_status_as_etcdctl_prints_it(from_pyetcd)

    with restored_member("etcd", tmp_path, from_pyetcd, "real") as real:
        assert served(real, revisions) == expected
        from_etcd = save_snapshot(real, tmp_path / "from-etcd.db")
    with restored_member("pyetcd", tmp_path, from_etcd, "py") as py:
        assert served(py, revisions) == expected
        # The restored member goes on from where the history stopped.
        put = as_json(py.etcdctl("put", "/next", "v", "-w", "json"))
        assert put["header"]["revision"] == revisions[-1] + 1


def test_every_bucket_of_a_real_etcd_snapshot_reads_as_etcd_serves_it(start_server: StartServer,
                                                                      tmp_path: Path) -> None:
    etcd = start_server("etcd", name="reader")
    revisions = write_history(etcd.endpoint)
    assert etcd.etcdctl("user", "add", "bob:pw").returncode == 0
    snapshot = save_snapshot(etcd, tmp_path / "etcd.db")
    _, root = read_database(strip_trailer(snapshot.read_bytes(), skip_hash_check=False))
    assert sorted(root.buckets) == sorted(ETCD_BUCKETS)
    contents = contents_of_etcd_database(strip_trailer(snapshot.read_bytes(), skip_hash_check=False))

    # key: replaying the stored revisions in order gives what etcd serves now.
    latest: dict[bytes, bytes | None] = {}
    for raw_rev, raw_kv in contents.revisions:
        kv = kv_pb2.KeyValue.FromString(raw_kv)
        assert int.from_bytes(raw_rev[:8], "big") == (kv.mod_revision or int.from_bytes(raw_rev[:8], "big"))
        latest[kv.key] = None if raw_rev.endswith(b"t") else kv.value
    served_now = as_json(etcd.etcdctl("get", "--prefix", "", "-w", "json", timeout=60))
    assert {base64.b64decode(kv["key"]): base64.b64decode(kv.get("value", "")) for kv in served_now["kvs"]} == \
        {key: value for key, value in latest.items() if value is not None}
    assert int.from_bytes(contents.meta[b"finishedCompactRev"][:8], "big") == revisions[0]
    # lease: every lease with its granted TTL.
    leases = as_json(etcd.etcdctl("lease", "list", "-w", "json"))["leases"]
    assert sorted(contents.leases) == sorted(lease["id"] for lease in leases)
    assert sorted(contents.leases.values()) == [600, 3000]
    # members, cluster, auth.
    members = as_json(etcd.etcdctl("member", "list", "-w", "json"))["members"]
    stored_members = [json.loads(v) for v in root.buckets[b"members"].items.values()]
    assert [(m["id"], m["name"], m["peerURLs"]) for m in stored_members] == \
        [(m["ID"], m["name"], m["peerURLs"]) for m in members]
    assert root.buckets[b"cluster"].items == {b"clusterVersion": b"3.4.0"}
    assert list(root.buckets[b"authUsers"].items) == [b"bob"]

