"""The HTTP side on https:// and unixs:// client URLs, beside gRPC on the same port, as etcd 3.4 serves it:
curl gets /health, /version, /metrics, the JSON gateway and /debug/raft with a client certificate,
and is refused without one or with a revoked one; etcdctl still speaks gRPC there. An https://
--listen-metrics-urls applies the same client TLS settings."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from pyetcd.http import sockmap
from pyetcd.http.relay_process import SOCKMAP_ENV
from tests.helpers.certs import CertFiles
from tests.helpers.servers import HOST, etcdctl_env, free_port
from tests.helpers.tlsservers import TLSServerProcess, start_all, tls_cluster
from tests.tls.conftest import PKI, https_metrics_url_flag, secure_member_flags


@pytest.fixture(scope="module")
def pyetcd_member(pki: PKI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSServerProcess]:
    """pyetcd with the flags of conftest's real etcd member: https clients, --client-cert-auth, a CRL;
    and a unixs:// and a plain http:// client URL beside the https one, and a --host-whitelist that
    requests over TLS skip (as in etcd), which curl's `Host: 127.0.0.1` would otherwise fail."""
    root = tmp_path_factory.mktemp("https-http")
    (member,) = tls_cluster("pyetcd", root, 1, [secure_member_flags(pki)], credentials=pki.client_credentials())
    member.extra_args = [*member.extra_args, "--host-whitelist=only.example",
                         f"--listen-client-urls={member.client_url},unixs://localhost:{free_port()},"
                         f"http://{HOST}:{free_port()}", https_metrics_url_flag()]
    try:
        start_all([member])
        yield member
    finally:
        member.stop()


def curl(member: TLSServerProcess, pki: PKI, path: str, *args: str, cert: CertFiles | None = None,
         unix_socket: str | None = None, base_url: str | None = None) -> subprocess.CompletedProcess[str]:
    """curl as an operator runs it against the member (its client URL, or `base_url`): the CA, and `cert`
    as the client certificate if given."""
    command = ["curl", "-sS", "-m", "10", "--cacert", str(pki.ca), "-w", "\n%{http_code}"]
    if cert is not None:
        command += ["--cert", str(cert.cert), "--key", str(cert.key)]
    url = (base_url or member.client_url) + path
    if unix_socket is not None:
        command += ["--unix-socket", unix_socket]
        url = f"https://{HOST}{path}"
    return subprocess.run([*command, *args, url], capture_output=True, text=True, timeout=20,
                          cwd=member.working_dir)


def answer(result: subprocess.CompletedProcess[str]) -> tuple[int, str]:
    assert result.returncode == 0, result.stderr
    body, _, status = result.stdout.rpartition("\n")
    return int(status), body


def without_identities(reply: dict[str, Any]) -> dict[str, Any]:
    """A gateway reply without what differs between two clusters by nature: ids, revisions and terms."""
    header = {name: value for name, value in reply.get("header", {}).items()
              if name not in ("cluster_id", "member_id", "revision", "raft_term")}
    kvs = [{name: value for name, value in kv.items() if not name.endswith("_revision")}
           for kv in reply.get("kvs", [])]
    return {**reply, "header": header, **({"kvs": kvs} if "kvs" in reply else {})}


def kv_round_trip(member: TLSServerProcess, pki: PKI) -> list[tuple[int, dict[str, Any]]]:
    put = answer(curl(member, pki, "/v3/kv/put", "-d", '{"key": "aHR0cHM=", "value": "dGxz"}', cert=pki.client))
    got = answer(curl(member, pki, "/v3/kv/range", "-d", '{"key": "aHR0cHM="}', cert=pki.client))
    return [(status, without_identities(json.loads(body))) for status, body in (put, got)]


def test_curl_over_https_gets_what_etcd_answers(pyetcd_member: TLSServerProcess,
                                                real_etcd_member: TLSServerProcess, pki: PKI) -> None:
    for path in ("/health", "/version"):
        assert answer(curl(pyetcd_member, pki, path, cert=pki.client)) == \
            answer(curl(real_etcd_member, pki, path, cert=pki.client))
    ours = kv_round_trip(pyetcd_member, pki)
    assert ours == kv_round_trip(real_etcd_member, pki)
    assert ours[1][1]["kvs"][0]["value"] == "dGxz"
    status, metrics = answer(curl(pyetcd_member, pki, "/metrics", cert=pki.client))
    assert status == 200 and "\netcd_server_has_leader 1" in metrics


def test_the_raft_page_is_served_on_https(pyetcd_member: TLSServerProcess, pki: PKI) -> None:
    status, page = answer(curl(pyetcd_member, pki, "/debug/raft", cert=pki.client))
    assert status == 200 and page.lower().startswith("<!doctype html>")
    # The page's live feed (server-sent events) answers over TLS too.
    feed = curl(pyetcd_member, pki, "/debug/raft/events?scope=member", "-m", "2", cert=pki.client)
    assert "event: " in feed.stdout


@pytest.mark.parametrize("refused", ["none", "revoked"])
def test_curl_without_an_acceptable_client_certificate_is_refused(
        refused: str, pyetcd_member: TLSServerProcess, real_etcd_member: TLSServerProcess, pki: PKI) -> None:
    cert = pki.revoked if refused == "revoked" else None
    for member in (pyetcd_member, real_etcd_member):
        logged = member.log_path.stat().st_size
        result = curl(member, pki, "/health", cert=cert)
        # etcd sends a TLS alert or closes at once; either way curl fails and no answer arrives.
        assert result.returncode != 0 and "health" not in result.stdout, (member.binary, result)
        # Both log the refusal in etcd's words.
        error = (rb"transport: certificate serial [0-9a-f]+ revoked" if refused == "revoked" else
                 rb"tls: client didn't provide a certificate")
        time.sleep(0.2)
        with member.log_path.open("rb") as log:
            log.seek(logged)
            assert re.search(rb'rejected connection from "127\.0\.0\.1:\d+" \(error "' + error + rb'", ServerName ""',
                             log.read()), member.binary


def test_an_https_metrics_url_serves_with_the_client_tls_checks(pyetcd_member: TLSServerProcess,
                                                                 real_etcd_member: TLSServerProcess, pki: PKI) -> None:
    for member in (pyetcd_member, real_etcd_member):
        metrics_url = next(arg.split("=", 1)[1] for arg in member.extra_args
                           if arg.startswith("--listen-metrics-urls="))
        status, metrics = answer(curl(member, pki, "/metrics", cert=pki.client, base_url=metrics_url))
        assert status == 200 and "\netcd_server_has_leader 1" in metrics, member.binary
        assert answer(curl(member, pki, "/health", cert=pki.client, base_url=metrics_url)) == \
            (200, '{"health":"true"}'), member.binary
        for refused in (pki.revoked, None):  # --client-crl-file and --client-cert-auth apply here too
            result = curl(member, pki, "/health", cert=refused, base_url=metrics_url)
            assert result.returncode != 0 and "health" not in result.stdout, (member.binary, result)


def test_etcdctl_speaks_grpc_on_the_same_https_port(pyetcd_member: TLSServerProcess, pki: PKI) -> None:
    assert pyetcd_member.etcdctl("put", "grpc/k", "v").stdout == "OK\n"
    assert answer(curl(pyetcd_member, pki, "/health", cert=pki.client)) == (200, '{"health":"true"}')
    assert pyetcd_member.etcdctl("get", "grpc/k", "--print-value-only").stdout == "v\n"


def listen_url(member: TLSServerProcess, scheme: str) -> str:
    listen = next(arg for arg in member.extra_args if arg.startswith("--listen-client-urls="))
    return next(url for url in listen.split("=", 1)[1].split(",") if url.startswith(scheme + "://"))


def test_a_plain_client_url_beside_tls_ones_keeps_plain_http_and_grpc(pyetcd_member: TLSServerProcess) -> None:
    plain = listen_url(pyetcd_member, "http")
    result = subprocess.run(["curl", "-sS", "-m", "10", "-w", "\n%{http_code}", plain + "/health"],
                            capture_output=True, text=True, timeout=20)
    status, body = answer(result)
    assert status == 421 and "the Host header was unrecognized" in body  # --host-whitelist applies to plain HTTP
    got = subprocess.run(["etcdctl", f"--endpoints={plain}", "endpoint", "health"], capture_output=True, text=True,
                         timeout=30, env=etcdctl_env())
    assert got.returncode == 0 and "is healthy" in got.stderr, got.stderr


def test_a_unixs_client_url_serves_http_and_grpc(pyetcd_member: TLSServerProcess, pki: PKI) -> None:
    unix_url = listen_url(pyetcd_member, "unixs")
    path = unix_url.removeprefix("unixs://")
    assert answer(curl(pyetcd_member, pki, "/health", cert=pki.client, unix_socket=path)) == \
        (200, '{"health":"true"}')
    got = subprocess.run(["etcdctl", f"--endpoints={unix_url}", *pyetcd_member.credentials.flags(),
                          "endpoint", "health"], capture_output=True, text=True, timeout=30,
                         cwd=pyetcd_member.working_dir, env=etcdctl_env())
    assert got.returncode == 0 and "is healthy" in got.stderr, got.stderr


def test_a_client_hello_split_over_segments_reaches_the_http_side(pyetcd_member: TLSServerProcess,
                                                                  pki: PKI) -> None:
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.load_cert_chain(str(pki.client.cert), str(pki.client.key))
    context.set_alpn_protocols(["http/1.1"])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=HOST)
    with socket.create_connection((HOST, pyetcd_member.client_port), timeout=10) as raw:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def exchange() -> None:
            """Send what TLS has to say, and give it what the member said."""
            raw.sendall(outgoing.read())
            data = raw.recv(65536)
            incoming.write(data) if data else incoming.write_eof()

        with pytest.raises(ssl.SSLWantReadError):
            tls.do_handshake()
        hello = outgoing.read()
        for start in range(0, len(hello), 40):  # the ClientHello in 40-byte segments, slowly
            raw.sendall(hello[start:start + 40])
            time.sleep(0.01)
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                exchange()
        tls.write(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = b""
        while not reply.endswith(b"}"):
            try:
                reply += tls.read(4096)
            except ssl.SSLWantReadError:
                exchange()
    assert tls.selected_alpn_protocol() == "http/1.1"
    assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b'\r\n\r\n{"health":"true"}')


@pytest.mark.parametrize("binary", ["pyetcd", "etcd"])
def test_with_auth_on_a_gateway_request_from_a_named_certificate_is_refused(binary: str, pki: PKI,
                                                                            tmp_path: Path) -> None:
    (member,) = tls_cluster(binary, tmp_path, 1, [secure_member_flags(pki)], credentials=pki.client_credentials())
    try:
        start_all([member])
        assert member.etcdctl("user", "add", "root:pw").returncode == 0
        assert member.etcdctl("auth", "enable").stdout == "Authentication Enabled\n"
        named = curl(member, pki, "/v3/kv/range", "-d", '{"key": "Zm9v"}', cert=pki.named_client)
        assert answer(named) == (400, "CommonName of client sending a request against gateway will be ignored "
                                      "and not used as expected\n")
        # Outside the gateway, or from a certificate without a Common Name, requests go on (to auth's answer).
        assert answer(curl(member, pki, "/health", cert=pki.named_client)) == (200, '{"health":"true"}')
        unnamed = answer(curl(member, pki, "/v3/kv/range", "-d", '{"key": "Zm9v"}', cert=pki.client))
        assert unnamed == (400, '{"error":"etcdserver: user name is empty","message":"etcdserver: user name is '
                                'empty","code":3}')
    finally:
        member.stop()


def _own_ports_to(port: int) -> set[int]:
    """This process's local ports of established TCP connections to 127.0.0.1:`port` (from /proc)."""
    inodes = set()
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:["):-1])
    ports = set()
    # grpc-core dials IPv4 from a dual-stack socket, listed in tcp6 with a v4-mapped address.
    remotes = {f"0100007F:{port:04X}", f"0000000000000000FFFF00000100007F:{port:04X}"}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            if remote in remotes and state == "01" and inode in inodes:
                ports.add(int(local.split(":")[1], 16))
    return ports


@pytest.fixture(scope="module")
def kernel_joined_member(pki: PKI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSServerProcess]:
    """pyetcd with conftest's https flags, its gRPC connections joined to grpc-core by the kernel."""
    if sockmap.unavailable() is not None:
        pytest.skip(f"no eBPF sockmap here: {sockmap.unavailable()}")
    (member,) = tls_cluster("pyetcd", tmp_path_factory.mktemp("https-kernel"), 1, [secure_member_flags(pki)],
                            credentials=pki.client_credentials())
    member.extra_environment[SOCKMAP_ENV] = "1"
    try:
        start_all([member])
        yield member
    finally:
        member.stop()


@pytest.mark.parametrize("joined_by", ["splice", "kernel"])
def test_a_grpc_refusal_names_the_client_port_it_came_from(joined_by: str, pki: PKI,
                                                          request: pytest.FixtureRequest) -> None:
    """gRPC reaches grpc-core through the client port's front, yet the log names the client's own
    address, as etcd does, not the front's connection to grpc-core; TLS gRPC works either way."""
    member: TLSServerProcess = request.getfixturevalue("pyetcd_member" if joined_by == "splice"
                                                       else "kernel_joined_member")
    assert member.etcdctl("put", "tls-key", "over-tls").returncode == 0
    assert member.etcdctl("get", "tls-key", "--print-value-only").stdout == "over-tls\n"
    credentials = grpc.ssl_channel_credentials(pki.ca.read_bytes(), pki.revoked.key.read_bytes(),
                                               pki.revoked.cert.read_bytes())
    logged = member.log_path.stat().st_size
    with grpc.secure_channel(f"{HOST}:{member.client_port}", credentials) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)  # connected: the refusal comes with the call
        ports = _own_ports_to(member.client_port)
        with pytest.raises(grpc.RpcError) as refused:
            rpc_pb2_grpc.KVStub(channel).Range(rpc_pb2.RangeRequest(key=b"k"), timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert ports
    time.sleep(0.2)
    with member.log_path.open("rb") as log:
        log.seek(logged)
        named = re.findall(rb'rejected connection from "127\.0\.0\.1:(\d+)" \(error "transport: certificate serial',
                           log.read())
    assert named and {int(port) for port in named} <= ports, (named, ports)
