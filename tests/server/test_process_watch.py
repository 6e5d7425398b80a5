"""`etcdctl watch` prints the same against real etcd and pyetcd: replay from a revision, prev-kv,
every output format, ranges, live events, progress requests and server-side progress notifications.

As in test_same_output.py, a fresh etcd and then a fresh pyetcd run on the same ports with the
same flags, so even member and cluster IDs in the JSON output must agree.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc

from etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.helpers.servers import EtcdctlWatch, ServerProcess, free_port

PROGRESS_INTERVAL = "1s"


def _write_history(server: ServerProcess) -> None:
    """Revisions 2..6: put a, put b, put a, del b, put c (under /w/), and /x outside."""
    for args in (("put", "/w/a", "1"), ("put", "/w/b", "2"), ("put", "/w/a", "3"), ("del", "/w/b"),
                 ("put", "/w/c", "4"), ("put", "/x", "outside")):
        assert server.etcdctl(*args).returncode == 0


def _watch(server: ServerProcess, lines: int, *args: str) -> list[str]:
    with EtcdctlWatch(server.endpoint, *args) as watch:
        return watch.read_lines(lines)


async def _server_progress_notification(server: ServerProcess) -> list[Any]:
    """A raw watch asking for progress notifications: what the first two answers say."""
    requests: asyncio.Queue[rpc_pb2.WatchRequest] = asyncio.Queue()
    requests.put_nowait(rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(
        key=b"/quiet", progress_notify=True)))

    async def outgoing() -> Any:
        while True:
            yield await requests.get()

    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        stream = rpc_pb2_grpc.WatchStub(channel).Watch(outgoing())
        answers = []
        for _ in range(2):
            response = await asyncio.wait_for(stream.read(), 30)
            answers.append((response.watch_id, response.created, response.canceled, len(response.events),
                            response.header.revision, response.header.member_id))
        stream.cancel()
    return answers


def _session(server: ServerProcess) -> list[Any]:
    _write_history(server)
    records: list[Any] = [
        # Line counts are exact, so no read waits for a line that never comes.
        ("replay with prev-kv", _watch(server, 19, "/w/", "--prefix", "--rev=2", "--prev-kv")),
        ("catch-up batch as json", _watch(server, 1, "/w/a", "--rev=2", "-w", "json")),
        ("fields", _watch(server, 11, "/w/c", "--rev=6", "-w", "fields")),
        ("a range [a, c)", _watch(server, 12, "/w/a", "/w/c", "--rev=1")),
        ("hex", _watch(server, 3, "--hex", "/w/c", "--rev=6")),
    ]
    with EtcdctlWatch(server.endpoint, interactive=True) as interactive:
        interactive.send("watch /w/ --prefix --rev=6")
        first = interactive.read_lines(3)
        interactive.send("progress")
        records.append(("interactive progress", first + interactive.read_lines(1)))
    # Starting at the next revision closes the race between the watch starting and the first put.
    next_revision = int(server.etcdctl("get", "/x", "-w", "json").stdout.split('"revision":')[1].split(",")[0]) + 1
    with EtcdctlWatch(server.endpoint, "/live/", "--prefix", "--prev-kv", f"--rev={next_revision}") as live:
        assert server.etcdctl("put", "/live/k", "old").returncode == 0
        first = live.read_lines(3)
        assert server.etcdctl("put", "/live/k", "new").returncode == 0
        records.append(("live with prev-kv", first + live.read_lines(5)))
    records.append(("server progress notify", asyncio.run(_server_progress_notification(server))))
    assert server.etcdctl("compact", "5").returncode == 0
    records.append(("compacted", _watch(server, 1, "/w/a", "--rev=3")))
    return records


def test_watch_sessions_print_the_same_on_etcd_and_pyetcd(tmp_path: Path) -> None:
    client_port, peer_port = free_port(), free_port()
    transcripts = []
    for index, binary in enumerate(["etcd", "pyetcd"]):
        server = ServerProcess(binary=binary, name="watch", data_dir=tmp_path / f"run{index}.etcd",
                               client_port=client_port, peer_port=peer_port,
                               extra_args=[f"--experimental-watch-progress-notify-interval={PROGRESS_INTERVAL}"])
        try:
            server.start()
            transcripts.append(_session(server))
        finally:
            server.stop()
    expected, actual = transcripts
    assert expected[0][1][:3] == ["PUT", "/w/a", "1"]  # the session itself did what it meant to
    for want, got in zip(expected, actual, strict=True):
        assert got == want
