"""The JSON gateway, driven by curl and by the etcd3gw client against real etcd and pyetcd at once.

Both servers start empty and get the same requests in the same order, so revisions agree and
the JSON bodies can be compared field by field; only what names a particular cluster (IDs,
term, sizes) is masked.
"""

from __future__ import annotations

import base64
import json
import subprocess
import threading
from typing import Any

import etcd3gw
import pytest

from tests.helpers.servers import HOST, JsonWatch, ServerProcess, StartServer

MASKED = {"cluster_id", "member_id", "raft_term", "ID", "dbSize", "dbSizeInUse", "leader", "raftIndex",
          "raftAppliedIndex", "raftTerm", "hash"}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def masked(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "<masked>" if k in MASKED else masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value


def curl(server: ServerProcess, path: str, body: str, *, max_time: float = 10.0) -> tuple[int, str]:
    """POST `body` with curl; (HTTP status, body)."""
    result = subprocess.run(
        ["curl", "-s", "-N", "-X", "POST", "-d", body, "-m", str(max_time), "-w", "\n%{http_code}",
         f"{server.client_url}{path}"], capture_output=True, text=True, timeout=max_time + 10)
    text, _, status = result.stdout.rpartition("\n")
    return int(status), text


@pytest.fixture(scope="module")
def pair(start_module_server: StartServer) -> dict[str, ServerProcess]:
    return {binary: start_module_server(binary, name="gw") for binary in ("etcd", "pyetcd")}


CURL_STEPS = [
    ("/v3/kv/put", {"key": b64("/c/a"), "value": b64("1")}),
    ("/v3/kv/put", {"key": b64("/c/b"), "value": b64("2"), "prev_kv": True}),
    ("/v3/kv/put", {"key": b64("/c/b"), "value": b64("3"), "prev_kv": True}),
    ("/v3/kv/range", {"key": b64("/c/a")}),
    ("/v3/kv/range", {"key": b64("/c/"), "range_end": b64("/c0"), "sort_order": "DESCEND", "limit": 1}),
    ("/v3/kv/range", {"key": b64("/c/"), "range_end": b64("/c0"), "count_only": True}),
    ("/v3beta/kv/range", {"key": b64("/c/b"), "keys_only": True, "unknown_field": 1}),
    ("/v3/kv/range", {"key": b64("/c/a"), "revision": "1000"}),
    ("/v3/kv/range", {}),
    ("/v3/kv/txn", {"compare": [{"key": b64("/c/a"), "result": "EQUAL", "target": "VALUE", "value": b64("1")}],
                    "success": [{"request_put": {"key": b64("/c/t"), "value": b64("yes")}}],
                    "failure": [{"request_range": {"key": b64("/c/a")}}]}),
    ("/v3/kv/txn", {"compare": [{"key": b64("/c/a"), "result": "EQUAL", "target": "VALUE", "value": b64("9")}],
                    "success": [{"request_put": {"key": b64("/c/t"), "value": b64("no")}}],
                    "failure": [{"request_range": {"key": b64("/c/t")}}]}),
    ("/v3/kv/deleterange", {"key": b64("/c/"), "range_end": b64("/c0"), "prev_kv": True}),
    ("/v3/kv/compaction", {"revision": "3"}),
    ("/v3/kv/range", {"key": b64("/c/a"), "revision": "2"}),
    ("/v3/lease/timetolive", {"ID": "12345"}),
    ("/v3/lease/revoke", {"ID": "12345"}),
    ("/v3/maintenance/alarm", {"action": "GET"}),
]


def test_curl_requests_get_etcds_json_bodies_and_statuses(pair: dict[str, ServerProcess]) -> None:
    for path, body in CURL_STEPS:
        answers = {name: curl(server, path, json.dumps(body)) for name, server in pair.items()}
        (etcd_status, etcd_body), (py_status, py_body) = answers["etcd"], answers["pyetcd"]
        assert py_status == etcd_status, (path, body, answers)
        assert masked(json.loads(py_body)) == masked(json.loads(etcd_body)), (path, body, answers)
    for name, server in pair.items():
        status, text = curl(server, "/v3/kv/range", "garbage")
        assert (status, json.loads(text)) == (400, {
            "error": "invalid character 'g' looking for beginning of value",
            "message": "invalid character 'g' looking for beginning of value", "code": 3}), name
        status, text = curl(server, "/v3/maintenance/status", "{}")
        assert status == 200 and json.loads(text)["version"] == "3.4.23", name


def test_watch_streams_json_lines(pair: dict[str, ServerProcess]) -> None:
    responses = {}
    for name, server in pair.items():
        with JsonWatch(server.client_url, "/w/k") as watch:
            created = watch.wait_created()  # the watch exists: a put now must reach it
            assert curl(server, "/v3/kv/put", json.dumps({"key": b64("/w/k"), "value": b64("v")}))[0] == 200
            responses[name] = [masked(created), masked(watch.next_response())]
    assert responses["pyetcd"] == responses["etcd"]
    assert responses["etcd"][1]["result"]["events"][0]["kv"]["value"] == b64("v")


def etcd3gw_session(server: ServerProcess) -> dict[str, Any]:
    """What a program using etcd3gw sees for put, get, prefix, delete, txn, lease, lock and watch."""
    client = etcd3gw.client(host=HOST, port=server.client_port)
    seen: dict[str, Any] = {}
    seen["put"] = client.put("/e/a", "1")
    client.put("/e/b", "2")
    seen["get"] = client.get("/e/a", metadata=True)
    seen["prefix"] = sorted(client.get_prefix("/e/"), key=lambda item: item[1]["key"])
    seen["txn"] = masked(client.transaction({
        "compare": [{"key": b64("/e/a"), "result": "EQUAL", "target": "VALUE", "value": b64("1")}],
        "success": [{"request_put": {"key": b64("/e/c"), "value": b64("3")}}], "failure": []}))
    seen["delete"] = client.delete("/e/b")
    seen["delete_missing"] = client.delete("/e/none")
    lease = client.lease(ttl=60)
    client.put("/e/leased", "x", lease=lease)
    seen["lease_ttl_positive"] = 0 < lease.ttl() <= 60
    seen["lease_refresh"] = lease.refresh()
    seen["lease_keys"] = lease.keys()
    seen["lease_revoke"] = lease.revoke()
    seen["leased_key_after_revoke"] = client.get("/e/leased")
    lock = client.lock(id="/e/lock", ttl=30)
    seen["lock_acquire"] = lock.acquire()
    seen["lock_second_acquire"] = client.lock(id="/e/lock", ttl=30).acquire()
    seen["lock_release"] = lock.release()
    events, cancel = client.watch("/e/w")
    try:
        threading.Timer(1.0, lambda: client.put("/e/w", "watched")).start()
        event = next(iter(events))
        seen["watch"] = (event["kv"]["key"], event["kv"]["value"], event.get("type", "PUT"))
    finally:
        cancel()
    seen["prefix_deleted"] = client.delete_prefix("/e/")
    return seen


def test_etcd3gw_client_sees_the_same_from_both(pair: dict[str, ServerProcess]) -> None:
    seen = {name: etcd3gw_session(server) for name, server in pair.items()}
    for field in seen["etcd"]:
        assert seen["pyetcd"][field] == seen["etcd"][field], field
    assert seen["etcd"]["lock_acquire"] is True and seen["etcd"]["lock_second_acquire"] is False
    assert seen["etcd"]["watch"] == (b"/e/w", b"watched", "PUT")
