"""100,000 keys through snapshots both ways, timed beside real etcd (`pytest -m slow -s` prints the times).

Kept out of `make test` by the slow marker: loading the keys alone takes a while on a small machine.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.helpers.servers import PYETCD_BINARY, ServerProcess, StartServer
from tests.server.test_process_etcd_snapshots import TOKEN, as_json, etcdctl, restored_member

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

KEYS = 100_000
OPS_PER_TXN = 128  # etcd's default --max-txn-ops


def load_keys(endpoint: str) -> None:
    with grpc.insecure_channel(endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        for start in range(0, KEYS, OPS_PER_TXN):
            ops = [rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"/large/%06d" % i, value=b"v%d" % i * 4))
                   for i in range(start, min(start + OPS_PER_TXN, KEYS))]
            kv.Txn(rpc_pb2.TxnRequest(success=ops), timeout=30)


def timed(run: list[str]) -> float:
    began = time.monotonic()
    done = subprocess.run(run, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    return time.monotonic() - began


def fingerprint(server: ServerProcess) -> tuple[int, int, int, Any]:
    """(revision, key count, hashkv, every key-value) of a member."""
    everything = as_json(server.etcdctl("get", "--prefix", "", "-w", "json", timeout=300))
    hashed = as_json(server.etcdctl("endpoint", "hashkv", "-w", "json"))[0]["HashKV"]
    return everything["header"]["revision"], everything["count"], hashed["hash"], everything["kvs"]


def save_timed(server: ServerProcess, path: Path) -> float:
    return timed(["etcdctl", f"--endpoints={server.endpoint}", "snapshot", "save", str(path)])


def test_a_hundred_thousand_keys_both_ways(start_server: StartServer, tmp_path: Path) -> None:
    times: dict[str, float] = {}
    etcd = start_server("etcd", name="large")
    load_keys(etcd.endpoint)
    expected = fingerprint(etcd)
    assert expected[1] == KEYS

    from_etcd = tmp_path / "from-etcd.db"
    times["etcd: snapshot save"] = save_timed(etcd, from_etcd)
    times["etcdctl snapshot status (etcd's file)"] = timed(["etcdctl", "snapshot", "status", str(from_etcd)])
    times["pyetcd snapshot status (etcd's file)"] = timed([str(PYETCD_BINARY), "snapshot", "status", str(from_etcd)])
    assert etcdctl("snapshot", "status", str(from_etcd), "-w", "json").stdout == subprocess.run(
        [str(PYETCD_BINARY), "snapshot", "status", str(from_etcd), "-w", "json"], capture_output=True,
        text=True).stdout
    peer = "http://127.0.0.1:1"
    member = ["--name=x", f"--initial-cluster=x={peer}", f"--initial-advertise-peer-urls={peer}",
              f"--initial-cluster-token={TOKEN}"]
    times["etcdctl snapshot restore"] = timed(["etcdctl", "snapshot", "restore", str(from_etcd),
                                               f"--data-dir={tmp_path / 'e.etcd'}", *member])
    times["pyetcd snapshot restore"] = timed([str(PYETCD_BINARY), "snapshot", "restore", str(from_etcd),
                                              f"--data-dir={tmp_path / 'p.etcd'}", *member])

    with restored_member("pyetcd", tmp_path, from_etcd, "py") as py:
        assert fingerprint(py) == expected
        from_pyetcd = tmp_path / "from-pyetcd.db"
        times["pyetcd: snapshot save"] = save_timed(py, from_pyetcd)
    times["etcdctl snapshot status (pyetcd's file)"] = timed(["etcdctl", "snapshot", "status", str(from_pyetcd)])
    with restored_member("etcd", tmp_path, from_pyetcd, "back") as back:
        assert fingerprint(back) == expected

    sizes = f"etcd's file {from_etcd.stat().st_size} bytes, pyetcd's {from_pyetcd.stat().st_size} bytes"
    print(f"\n{KEYS} keys ({sizes}):")
    for what, seconds in times.items():
        print(f"  {what:45} {seconds:7.2f} s")
