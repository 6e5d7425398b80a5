"""gRPC connections on the client port joined to grpc-core by the kernel (eBPF sockmap, asked for
with PYETCD_CLIENT_PORT_SOCKMAP=1), and the splice relay that serves them otherwise.

The first tests join socket pairs directly, both ways (pyetcd/http/sockmap.py, splice_relay.py):
bytes arrive whole and in order both ways, those sent before the join first; ends of stream and
resets reach the other side. The others run a member each way: etcdctl, a large value and many
concurrent calls over gRPC, HTTP beside them, whether the front process runs relay threads, and
connections that end when the member stops; and a kernel that refuses bpf is said once.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from pyetcd.http import front as client_front
from pyetcd.http import sockmap
from pyetcd.http.relay_process import HTTP2_PREFACE, SOCKMAP_ENV
from pyetcd.http.sockmap import Sockmap, SockmapRelays
from pyetcd.http.splice_relay import SpliceRelay
from tests.helpers.servers import ServerProcess, free_port
from tests.http.httpget import http_get

REASON = sockmap.unavailable()
needs_sockmap = pytest.mark.skipif(REASON is not None, reason=f"no eBPF sockmap here: {REASON}")
STREAMS = 24
LARGE = 8 << 20


def _tcp_pair(listener: socket.socket) -> tuple[socket.socket, socket.socket]:
    """(the connecting end, the accepted end) of a fresh loopback connection to `listener`."""
    near = socket.create_connection(listener.getsockname())
    far, _ = listener.accept()
    return near, far


def _recv_exactly(sock: socket.socket, count: int) -> bytes:
    got = bytearray()
    while len(got) < count:
        chunk = sock.recv(min(1 << 20, count - len(got)))
        if not chunk:
            break
        got += chunk
    return bytes(got)


class ThreadRelays:
    """The splice relay (two threads per connection) behind SockmapRelays' interface."""

    def join(self, a: socket.socket, b: socket.socket, on_end: Callable[[], None] | None = None) -> None:
        SpliceRelay(a, b, on_closed=lambda _: on_end() if on_end is not None else None).start()

    def handle_events(self) -> None:
        pass

    def timeout(self) -> float | None:
        return None

    def retry(self) -> None:
        pass

    def close(self) -> None:
        pass


class Joined:
    """A front-like arrangement: client -> (front) ... (front) -> backend, the front's two sockets
    joined by `relays`, whose events a thread handles as the front's loop does."""

    def __init__(self, relays: SockmapRelays | ThreadRelays, front: socket.socket, backend: socket.socket) -> None:
        self.client, accepted = _tcp_pair(front)
        self.relay, self.server = _tcp_pair(backend)
        self.accepted = accepted
        self.ended = threading.Event()
        self._relays = relays

    def join(self) -> None:
        self._relays.join(self.accepted, self.relay, self.ended.set)


@pytest.fixture(params=[pytest.param("kernel", marks=needs_sockmap), "splice"])
def joined(request: pytest.FixtureRequest) -> Iterator[Callable[[], Joined]]:
    relays = SockmapRelays(Sockmap.create()) if request.param == "kernel" else ThreadRelays()
    front = socket.create_server(("127.0.0.1", 0), backlog=64)
    backend = socket.create_server(("127.0.0.1", 0), backlog=64)
    stop = threading.Event()
    lock = threading.Lock()

    def pump() -> None:  # the front's loop: events, and retries while an end waits for its bytes
        while not stop.is_set():
            with lock:
                relays.handle_events()
                if relays.timeout() is not None:
                    relays.retry()
            time.sleep(0.001)

    made: list[Joined] = []

    def make() -> Joined:
        pair = Joined(relays, front, backend)
        with lock:
            pair.join()
        made.append(pair)
        return pair

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    try:
        yield make
    finally:
        stop.set()
        thread.join(5)
        relays.close()
        for pair in made:
            pair.client.close()
            pair.server.close()
        front.close()
        backend.close()


def test_bytes_arrive_whole_and_in_order_both_ways(joined: Callable[[], Joined]) -> None:
    pairs = [joined() for _ in range(STREAMS)]
    payloads = [(os.urandom(LARGE if index == 0 else 50_000 + index * 997),
                 os.urandom(LARGE if index == 1 else 30_000 + index * 631)) for index in range(STREAMS)]
    results: dict[tuple[int, str], bytes] = {}

    def run(index: int) -> None:
        pair = pairs[index]
        up, down = payloads[index]
        senders = [threading.Thread(target=pair.client.sendall, args=(up,)),
                   threading.Thread(target=pair.server.sendall, args=(down,))]
        for sender in senders:
            sender.start()
        results[index, "up"] = _recv_exactly(pair.server, len(up))
        results[index, "down"] = _recv_exactly(pair.client, len(down))
        for sender in senders:
            sender.join()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(STREAMS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for index, (up, down) in enumerate(payloads):
        assert results[index, "up"] == up, f"stream {index}: client to server"
        assert results[index, "down"] == down, f"stream {index}: server to client"


@needs_sockmap
def test_bytes_sent_before_the_join_come_first() -> None:
    relays = SockmapRelays(Sockmap.create())
    front = socket.create_server(("127.0.0.1", 0))
    backend = socket.create_server(("127.0.0.1", 0))
    try:
        pair = Joined(relays, front, backend)
        pair.client.sendall(HTTP2_PREFACE)
        pair.server.sendall(b"settings")
        time.sleep(0.05)  # both are queued on the front's sockets before the join
        pair.join()
        pair.server.settimeout(5)
        pair.client.settimeout(5)
        # They come through without a later arrival to push them (the join's SO_RCVLOWAT does)...
        assert _recv_exactly(pair.server, len(HTTP2_PREFACE)) == HTTP2_PREFACE
        assert _recv_exactly(pair.client, 8) == b"settings"
        # ...and ahead of what follows.
        pair.client.sendall(b"after")
        pair.server.sendall(b"|after")
        assert _recv_exactly(pair.server, 5) == b"after"
        assert _recv_exactly(pair.client, 6) == b"|after"
        pair.client.close()
        pair.server.close()
    finally:
        relays.close()
        front.close()
        backend.close()


@needs_sockmap
def test_a_full_map_leaves_the_connection_to_the_splice_relay() -> None:
    relays = SockmapRelays(Sockmap.create(max_entries=2))  # room for one connection
    front = socket.create_server(("127.0.0.1", 0))
    backend = socket.create_server(("127.0.0.1", 0))
    try:
        first = Joined(relays, front, backend)
        first.join()
        second = Joined(relays, front, backend)
        second.client.sendall(HTTP2_PREFACE)
        with pytest.raises(sockmap.NotJoined):
            second.join()
        SpliceRelay(second.accepted, second.relay).start()  # what the front does then
        second.server.settimeout(5)
        second.client.settimeout(5)
        assert _recv_exactly(second.server, len(HTTP2_PREFACE)) == HTTP2_PREFACE
        second.server.sendall(b"spliced")
        assert _recv_exactly(second.client, 7) == b"spliced"
        first.client.sendall(b"joined")
        first.server.settimeout(5)
        assert _recv_exactly(first.server, 6) == b"joined"
        for pair in (first, second):
            pair.client.close()
            pair.server.close()
    finally:
        relays.close()
        front.close()
        backend.close()


def test_half_close_passes_the_end_after_the_bytes_before_it(joined: Callable[[], Joined]) -> None:
    pair = joined()
    request = os.urandom(4 << 20)
    pair.client.sendall(request)
    pair.client.shutdown(socket.SHUT_WR)  # the FIN follows 4 MiB the kernel may still be moving
    pair.server.settimeout(10)
    pair.client.settimeout(10)
    assert _recv_exactly(pair.server, len(request) + 1) == request  # then end of stream, nothing more
    assert not pair.ended.is_set()  # the other direction is still open
    pair.server.sendall(b"answer after the client's end")
    pair.server.shutdown(socket.SHUT_WR)
    assert _recv_exactly(pair.client, 100) == b"answer after the client's end"
    assert pair.ended.wait(5), "both directions ended, yet the front kept the connection"


def test_client_reset_ends_the_backend_connection(joined: Callable[[], Joined]) -> None:
    pair = joined()
    pair.client.sendall(HTTP2_PREFACE)
    pair.server.settimeout(5)
    assert _recv_exactly(pair.server, len(HTTP2_PREFACE)) == HTTP2_PREFACE
    pair.client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    pair.client.close()  # RST
    with contextlib.suppress(ConnectionResetError):  # a reset passed on is an end too
        assert pair.server.recv(10) == b""
    pair.server.close()  # as grpc-core closes a connection that ended
    assert pair.ended.wait(5)


@contextlib.contextmanager
def _member(tmp_path: Path, name: str, *, kernel: bool) -> Iterator[ServerProcess]:
    server = ServerProcess(binary="pyetcd", name=name, data_dir=tmp_path / f"{name}.etcd", client_port=free_port(),
                           peer_port=free_port(), extra_environment={SOCKMAP_ENV: "1" if kernel else "0"})
    try:
        yield server.start()
    finally:
        server.stop()


def _front_threads(server: ServerProcess) -> int:
    assert server.process is not None
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children").read_text().split()
    assert len(children) == 1, children
    return len(os.listdir(f"/proc/{children[0]}/task"))


def _grpc_load(endpoint: str) -> None:
    """A value over 1 MiB, and 200 calls at once over four connections, each answered with its own value."""
    big = os.urandom(1_500_000)
    options = [("grpc.max_receive_message_length", 8 << 20), ("grpc.max_send_message_length", 8 << 20)]
    channels = [grpc.insecure_channel(endpoint, options=[*options, ("grpc.use_local_subchannel_pool", 1)])
                for _ in range(4)]
    try:
        kv = [rpc_pb2_grpc.KVStub(channel) for channel in channels]
        kv[0].Put(rpc_pb2.PutRequest(key=b"big", value=big), timeout=30)
        assert kv[1].Range(rpc_pb2.RangeRequest(key=b"big"), timeout=30).kvs[0].value == big
        puts = [kv[index % 4].Put.future(rpc_pb2.PutRequest(key=b"k%d" % index, value=b"v%d" % index), timeout=30)
                for index in range(200)]
        for put in puts:
            put.result()
        gets = [kv[index % 4].Range.future(rpc_pb2.RangeRequest(key=b"k%d" % index), timeout=30)
                for index in range(200)]
        for index, get in enumerate(gets):
            assert get.result().kvs[0].value == b"v%d" % index
    finally:
        for channel in channels:
            channel.close()


@pytest.mark.parametrize("kernel", [pytest.param(True, id="kernel", marks=needs_sockmap),
                                    pytest.param(False, id="splice")])
def test_member_serves_grpc_and_http_on_the_client_port(kernel: bool, tmp_path: Path) -> None:
    with _member(tmp_path, "cp", kernel=kernel) as server:
        assert server.etcdctl("put", "foo", "bar").returncode == 0
        assert server.etcdctl("get", "foo", "--print-value-only").stdout == "bar\n"
        with grpc.insecure_channel(server.endpoint) as channel:
            rpc_pb2_grpc.KVStub(channel).Range(rpc_pb2.RangeRequest(key=b"foo"), timeout=10)
            # The splice relay runs two threads for this connection; the kernel needs none.
            assert (_front_threads(server) == 1) == kernel
            _grpc_load(server.endpoint)
        assert http_get(server.client_url + "/health").body == b'{"health":"true"}'
        assert "relayed with splice" not in server.log_path.read_text()


@pytest.mark.parametrize("kernel", [pytest.param(True, id="kernel", marks=needs_sockmap),
                                    pytest.param(False, id="splice")])
def test_member_stopping_ends_relayed_connections(kernel: bool, tmp_path: Path) -> None:
    with _member(tmp_path, "stop", kernel=kernel) as server:
        client = socket.create_connection(("127.0.0.1", server.client_port))
        try:
            client.sendall(HTTP2_PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")  # an empty SETTINGS frame
            client.settimeout(10)
            assert client.recv(9)[3] == 0x04  # grpc-core's SETTINGS came back through the front
            server.stop()
            received = b"x"
            while received:
                received = client.recv(65536)  # the rest (GOAWAY perhaps), then the end
        except ConnectionResetError:
            pass
        finally:
            client.close()


def test_a_kernel_that_refuses_bpf_is_said_once(monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv(SOCKMAP_ENV, "1")
    monkeypatch.setattr(client_front, "_kernel_join", None)
    monkeypatch.setattr(sockmap, "unavailable", lambda: "[Errno 1] bpf(0): Operation not permitted")
    with caplog.at_level("INFO", logger="pyetcd.embed"):
        assert not client_front.kernel_join_available()
        assert not client_front.kernel_join_available()
    said = [record.getMessage() for record in caplog.records if "relayed with splice" in record.getMessage()]
    assert said == ["client port: gRPC connections are relayed with splice, not joined in the kernel "
                    "(eBPF sockmap: [Errno 1] bpf(0): Operation not permitted)"]
