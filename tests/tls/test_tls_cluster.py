"""Clusters that speak TLS, driven by the real etcdctl: TLS everywhere, and plain clients with TLS peers."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers.servers import HOST, error_lines, etcdctl_env, free_port, run_etcdctl
from tests.helpers.tlsservers import TLSServerProcess, start_all, stop_all, tls_cluster
from tests.tls.conftest import PKI, secure_member_flags

# etcd's log line when a handshake or the check after it refuses a connection (embed.logTLSHandshakeFailure).
REJECTED = (r'rejected connection from "127\.0\.0\.1:\d+" \(error "(?P<error>[^"]*)", ServerName "", '
            r'IPAddresses \[{sans}\)')
OUR_SANS = r'"127\.0\.0\.1"\], DNSNames \["localhost"\]'
ANY_SANS = r'[^]]*\], DNSNames \[[^]]*\]'


def etcdctl_ok(member: TLSServerProcess, *args: str) -> str:
    result = member.etcdctl(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_tls_only_cluster_replicates_writes_made_over_tls(tls_only_cluster: list[TLSServerProcess]) -> None:
    first, _, last = tls_only_cluster
    assert etcdctl_ok(first, "put", "tls/k", "over-tls") == "OK\n"
    # A linearizable read on another member needs the leader's ReadIndex, over the TLS peer links.
    assert etcdctl_ok(last, "get", "tls/k", "--print-value-only") == "over-tls\n"
    members = json.loads(etcdctl_ok(first, "member", "list", "-w", "json"))["members"]
    assert sorted(url for m in members for url in m["peerURLs"]) == sorted(m.peer_url for m in tls_only_cluster)
    assert sorted(url for m in members for url in m["clientURLs"]) == sorted(m.client_url for m in tls_only_cluster)
    # Keep-alives on every member reach the leader's lessor, over TLS from the followers.
    lease = etcdctl_ok(first, "lease", "grant", "60").split()[1]
    for member in tls_only_cluster:
        assert f"lease {lease} keepalived with TTL(60)" in etcdctl_ok(member, "lease", "keep-alive", "--once", lease)
    everyone = ",".join(m.client_url for m in tls_only_cluster)
    health = run_etcdctl(everyone, *last.credentials.flags(), "endpoint", "health")
    assert health.returncode == 0 and health.stderr.count("is healthy") == 3, health.stderr


@pytest.mark.parametrize("who", ["pyetcd", "etcd"])
def test_a_client_without_a_certificate_is_refused(who: str, tls_only_cluster: list[TLSServerProcess],
                                                    real_etcd_member: TLSServerProcess, pki: PKI) -> None:
    member = tls_only_cluster[0] if who == "pyetcd" else real_etcd_member
    result = subprocess.run(["etcdctl", f"--endpoints={member.client_url}", f"--cacert={pki.ca}",
                             "--command-timeout=2s", "get", "tls/k"],
                            env=etcdctl_env(), capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert error_lines(result.stderr) == ["Error: context deadline exceeded"]


def rejections_since(member: TLSServerProcess, offset: int, timeout: float = 5.0, sans: str = OUR_SANS) -> list[str]:
    """The errors of the "rejected connection" lines the member logged after byte `offset` of its log,
    for a certificate whose SANs match `sans`."""
    deadline = time.monotonic() + timeout
    pattern = re.compile(REJECTED.format(sans=sans))
    while True:
        found = [m["error"] for m in pattern.finditer(member.log_path.read_text(errors="replace")[offset:])]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def log_size(member: TLSServerProcess) -> int:
    return len(member.log_path.read_text(errors="replace"))


@pytest.mark.parametrize("who", ["pyetcd", "etcd"])
def test_a_revoked_client_certificate_is_refused_and_logged_as_etcd_logs_it(
        who: str, tls_only_cluster: list[TLSServerProcess], real_etcd_member: TLSServerProcess, pki: PKI) -> None:
    member = tls_only_cluster[0] if who == "pyetcd" else real_etcd_member
    offset = log_size(member)
    result = subprocess.run(["etcdctl", f"--endpoints={member.client_url}", *pki.client_credentials(pki.revoked)
                             .flags(), "--command-timeout=2s", "put", "tls/revoked", "x"],
                            env=etcdctl_env(), capture_output=True, text=True, timeout=30)
    revoked = f"transport: certificate serial {pki.revoked.serial.to_bytes(20, 'big').lstrip(bytes(1)).hex()} revoked"
    assert result.returncode == 1
    # etcd drops the connection, so etcdctl times out; pyetcd refuses each call and says why.
    assert error_lines(result.stderr) == (["Error: context deadline exceeded"] if who == "etcd" else
                                          [f"Error: rpc error: code = Unauthenticated desc = {revoked}"])
    assert set(rejections_since(member, offset)) == {revoked}
    assert member.etcdctl("get", "tls/revoked", "--print-value-only").stdout == ""


# Who may not be a peer, and the words etcd logs for each.
REFUSED_PEERS = [("intruder", "client certificate authentication failed"),
                 ("misplaced", "x509: certificate is valid for 10.9.9.9, not 127.0.0.1")]


@pytest.mark.parametrize(("which", "error"), REFUSED_PEERS)
def test_a_member_whose_certificate_is_not_allowed_cannot_join(
        which: str, error: str, tls_only_cluster: list[TLSServerProcess], pki: PKI, tmp_path: Path) -> None:
    first = tls_only_cluster[0]
    certificate = getattr(pki, which)
    offset = log_size(first)
    # The certificate comes from the cluster's own CA, but its CN is not --peer-cert-allowed-cn, or it
    # does not name the address the member connects from.
    intruder = TLSServerProcess("pyetcd", "intruder", tmp_path / "intruder.etcd", free_port(), free_port())
    intruder.initial_cluster = ",".join([f"{m.name}={m.peer_url}" for m in tls_only_cluster]
                                        + [f"intruder={intruder.peer_url}"])
    intruder.extra_args = ["--initial-cluster-state=existing", f"--peer-cert-file={certificate.cert}",
                           f"--peer-key-file={certificate.key}", f"--peer-trusted-ca-file={pki.ca}",
                           f"--cert-file={pki.member.cert}", f"--key-file={pki.member.key}"]
    intruder.start(wait=False)
    try:
        assert intruder.process is not None
        assert intruder.process.wait(30) == 1
    finally:
        intruder.stop()
    assert "could not retrieve cluster information from the given URLs" in intruder.log_tail()
    assert set(rejections_since(first, offset, sans=ANY_SANS)) == {error}


@pytest.mark.parametrize(("which", "error"), REFUSED_PEERS)
def test_real_etcd_logs_a_refused_peer_in_the_same_words(
        which: str, error: str, real_etcd_member: TLSServerProcess, pki: PKI) -> None:
    offset = log_size(real_etcd_member)
    certificate = getattr(pki, which)
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.load_cert_chain(str(certificate.cert), str(certificate.key))
    with socket.create_connection((HOST, real_etcd_member.peer_port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=HOST) as tls, contextlib.suppress(ssl.SSLError, OSError):
        tls.recv(1)
    assert set(rejections_since(real_etcd_member, offset, sans=ANY_SANS)) == {error}


def test_plain_clients_with_auto_tls_peers_over_unix_sockets(tmp_path: Path) -> None:
    """A mixed cluster: clients in plain text, peers over unixs:// sockets with self-signed certificates."""
    members = tls_cluster("pyetcd", tmp_path, 3, [["--peer-auto-tls"]] * 3, client_scheme="http",
                          peer_scheme="unixs", peer_host="localhost")
    unix_client = f"unix://localhost:{free_port()}"
    members[2].extra_args.append(f"--listen-client-urls={members[2].client_url},{unix_client}")
    try:
        start_all(members)
        assert etcdctl_ok(members[0], "put", "mixed/k", "v") == "OK\n"
        # Clients may use a plain unix socket too (etcdctl resolves it where the members run).
        got = subprocess.run(["etcdctl", f"--endpoints={unix_client}", "get", "mixed/k", "--print-value-only"],
                             env=etcdctl_env(), capture_output=True, text=True, timeout=30, cwd=tmp_path)
        assert (got.returncode, got.stdout) == (0, "v\n"), got.stderr
        for member in members:
            assert (member.data_dir / "fixtures" / "peer" / "cert.pem").exists()
            assert (tmp_path / f"localhost:{member.peer_port}").is_socket()
    finally:
        stop_all(members)


def test_a_member_with_an_allowed_certificate_joins_over_tls(
        tls_only_cluster: list[TLSServerProcess], pki: PKI, tmp_path: Path) -> None:
    first = tls_only_cluster[0]
    etcdctl_ok(first, "put", "tls/before-join", "replicated")
    joiner = TLSServerProcess("pyetcd", "joiner", tmp_path / "joiner.etcd", free_port(), free_port(),
                              credentials=pki.client_credentials())
    added = etcdctl_ok(first, "member", "add", "joiner", f"--peer-urls={joiner.peer_url}", "--learner")
    member_id = re.search(r"Member +([0-9a-f]+) added", added)
    assert member_id is not None, added
    joiner.initial_cluster = ",".join([f"{m.name}={m.peer_url}" for m in tls_only_cluster]
                                      + [f"joiner={joiner.peer_url}"])
    joiner.extra_args = ["--initial-cluster-state=existing", *secure_member_flags(pki)]
    joiner.start(wait=False)
    try:
        deadline = time.monotonic() + 30
        value = ""
        while value != "replicated\n" and time.monotonic() < deadline:
            assert joiner.process is not None and joiner.process.poll() is None, joiner.log_tail()
            # A learner serves serializable reads only: what it has from the leader, over TLS.
            value = joiner.etcdctl("get", "tls/before-join", "--print-value-only", "--consistency=s").stdout
            time.sleep(0.2)
        assert value == "replicated\n", joiner.log_tail()
    finally:
        etcdctl_ok(first, "member", "remove", member_id.group(1))
        joiner.stop()
