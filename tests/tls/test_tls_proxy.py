"""`pyetcd grpc-proxy start` with TLS to the cluster and to its own clients, beside etcd's grpc-proxy."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.servers import HOST, binary_path, free_port, run_etcdctl, stop_process
from tests.helpers.tlsservers import ClientCredentials, TLSServerProcess, tls_handshake
from tests.tls.conftest import PKI


def proxy_command(binary: str, endpoint: str, listen_port: int, pki: PKI, *extra: str) -> list[str]:
    return [binary_path(binary), "grpc-proxy", "start", f"--endpoints={endpoint}",
            f"--listen-addr={HOST}:{listen_port}",
            f"--cert={pki.client.cert}", f"--key={pki.client.key}", f"--cacert={pki.ca}", *extra]


@pytest.mark.parametrize("binary", ["pyetcd", "etcd"])
def test_grpc_proxy_refuses_a_cluster_certificate_with_a_common_name(binary: str, pki: PKI, tmp_path: Path) -> None:
    command = proxy_command(binary, "https://127.0.0.1:1", free_port(), pki, f"--data-dir={tmp_path}")
    command = [arg.replace(str(pki.client.cert), str(pki.named_client.cert))
               .replace(str(pki.client.key), str(pki.named_client.key)) for arg in command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "cert has non empty Common Name (root)"


def test_grpc_proxy_speaks_tls_to_the_cluster_and_to_its_clients(
        tls_only_cluster: list[TLSServerProcess], pki: PKI, tmp_path: Path) -> None:
    port = free_port()
    command = proxy_command("pyetcd", tls_only_cluster[0].client_url, port, pki,
                            f"--cert-file={pki.member.cert}", f"--key-file={pki.member.key}",
                            f"--trusted-ca-file={pki.ca}",
                            "--listen-cipher-suites=TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")
    with running_proxy(command, tmp_path):
        endpoint = f"https://{HOST}:{port}"
        put = etcdctl_when_up(endpoint, pki.client_credentials().flags(), "put", "proxied/k", "through-tls")
        assert put.stdout == "OK\n", put.stderr
        direct = tls_only_cluster[1].etcdctl("get", "proxied/k", "--print-value-only")
        assert direct.stdout == "through-tls\n"
        # The proxy asks its own clients for a certificate from --trusted-ca-file.
        anonymous = run_etcdctl(endpoint, f"--cacert={pki.ca}", "get", "proxied/k", "--command-timeout=2s")
        assert anonymous.returncode == 1 and "context deadline exceeded" in anonymous.stderr
        assert tls_handshake(port, ciphers="ECDHE-ECDSA-AES256-GCM-SHA384", cert=pki.client).startswith("refused")
        assert tls_handshake(port, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256", cert=pki.client) == \
            "ECDHE-ECDSA-AES128-GCM-SHA256"


def test_grpc_proxy_auto_tls_serves_clients_with_a_self_signed_certificate(
        tls_only_cluster: list[TLSServerProcess], pki: PKI, tmp_path: Path) -> None:
    port = free_port()
    command = proxy_command("pyetcd", tls_only_cluster[0].client_url, port, pki, "--auto-tls",
                            f"--data-dir={tmp_path / 'proxy'}")
    with running_proxy(command, tmp_path):
        trusting = ClientCredentials(insecure_skip_verify=True).flags()
        put = etcdctl_when_up(f"https://{HOST}:{port}", trusting, "put", "proxied/auto", "v")
        assert put.stdout == "OK\n", put.stderr
    assert (tmp_path / "proxy" / "fixtures" / "proxy" / "cert.pem").exists()


@contextlib.contextmanager
def running_proxy(command: list[str], log_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    with (log_dir / "proxy.log").open("wb") as log:
        proxy = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield proxy
        finally:
            stop_process(proxy)


def etcdctl_when_up(endpoint: str, flags: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run etcdctl until it succeeds (the proxy is starting) or 30 s pass; the last run."""
    deadline = time.monotonic() + 30
    while True:
        result = run_etcdctl(endpoint, *flags, *args, "--command-timeout=2s")
        if result.returncode == 0 or time.monotonic() > deadline:
            return result
        time.sleep(0.2)
