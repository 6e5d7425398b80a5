"""Response headers that etcd fills in its own way, compared on a real etcd and pyetcd side by side.

A watch cancelled because its start revision was compacted carries a header without a revision
(etcd's store sends that cancel with none), and `HashKV` at an older revision names the store's
current revision in its header, not the one hashed. Both servers get the same history first.
"""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest

from etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.helpers.servers import ServerProcess, StartServer

COMPACTED_AT = 4
CURRENT = 7  # six puts after the revision 1 of a fresh store


@pytest.fixture(scope="module")
def servers(start_module_server: StartServer) -> dict[str, ServerProcess]:
    started = {binary: start_module_server(binary) for binary in ("etcd", "pyetcd")}
    for server in started.values():
        for value in range(1, CURRENT):
            assert server.etcdctl("put", "a", f"v{value}").returncode == 0
        assert server.etcdctl("compact", str(COMPACTED_AT)).returncode == 0
    return started


def _header_fields(header: dict[str, Any]) -> dict[str, Any]:
    """Which fields a JSON header has, and the revision if any (member and cluster IDs differ by port)."""
    return {"fields": sorted(header), "revision": header.get("revision")}


def _grpc_compacted_watch(server: ServerProcess, start_revision: int) -> list[tuple[bool, bool, int, int]]:
    """(created, canceled, compact_revision, header revision) of the first two answers of a raw watch."""
    with grpc.insecure_channel(server.endpoint) as channel:
        request = rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(
            key=b"a", start_revision=start_revision))
        stream = rpc_pb2_grpc.WatchStub(channel).Watch(iter([request]), timeout=10)
        answers = []
        for response in stream:
            answers.append((response.created, response.canceled, response.compact_revision,
                            response.header.revision))
            if len(answers) == 2:
                break
        stream.cancel()
    return answers


def test_etcdctl_watch_at_a_compacted_revision_prints_a_header_without_revision(
        servers: dict[str, ServerProcess]) -> None:
    printed = {}
    for binary, server in servers.items():
        result = server.etcdctl("watch", "a", "--rev=2", "-w", "json", timeout=15)
        [line] = [line for line in result.stdout.splitlines() if line.startswith("{")]
        answer = json.loads(line)
        printed[binary] = (_header_fields(answer["Header"]), answer["CompactRevision"], answer["Canceled"],
                           result.returncode)
    assert printed["etcd"] == ({"fields": ["cluster_id", "member_id", "raft_term"], "revision": None},
                               COMPACTED_AT, True, 5)
    assert printed["pyetcd"] == printed["etcd"]


@pytest.mark.parametrize("start_revision", [2, -1], ids=["below-compaction", "negative"])
def test_compacted_watch_answers_match_etcd_over_grpc(servers: dict[str, ServerProcess],
                                                      start_revision: int) -> None:
    answers = {binary: _grpc_compacted_watch(server, start_revision) for binary, server in servers.items()}
    # Created with the current revision, then cancelled with none.
    assert answers["etcd"] == [(True, False, 0, CURRENT), (False, True, COMPACTED_AT, 0)]
    assert answers["pyetcd"] == answers["etcd"]


def test_hashkv_at_an_old_revision_names_the_current_revision(servers: dict[str, ServerProcess]) -> None:
    headers = {}
    for binary, server in servers.items():
        result = server.etcdctl("endpoint", "hashkv", "--rev=5", "-w", "json")
        assert result.returncode == 0, result.stderr
        [answer] = json.loads(result.stdout)
        headers[binary] = (_header_fields(answer["HashKV"]["header"]), answer["HashKV"]["compact_revision"])
    assert headers["etcd"] == ({"fields": ["cluster_id", "member_id", "raft_term", "revision"],
                                "revision": CURRENT}, COMPACTED_AT)
    assert headers["pyetcd"] == headers["etcd"]
