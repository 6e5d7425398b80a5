"""An https:// --listen-metrics-urls is served over TLS with the client certificate, as etcd serves it."""

from __future__ import annotations

import ssl
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.helpers.certs import CertificateAuthority
from tests.helpers.servers import HOST, ServerProcess, StartServer, binary_path, free_port


def https_get(url: str, ca: Path) -> tuple[int, bytes]:
    context = ssl.create_default_context(cafile=str(ca))
    with urllib.request.urlopen(url, context=context, timeout=10) as answer:
        return answer.status, answer.read()


@pytest.mark.parametrize("binary", ["etcd", "pyetcd"])
def test_https_metrics_url_speaks_tls_with_the_client_certificate(binary: str, start_server: StartServer,
                                                                 tmp_path: Path) -> None:
    authority = CertificateAuthority(tmp_path / "pki")
    member = authority.issue("member")
    metrics_url = f"https://{HOST}:{free_port()}"
    start_server(binary, name="mtls", extra_args=[f"--listen-metrics-urls={metrics_url}",
                                                  f"--cert-file={member.cert}", f"--key-file={member.key}"])
    status, body = https_get(f"{metrics_url}/metrics", authority.cert_path)
    assert status == 200 and b"etcd_server_has_leader" in body
    assert https_get(f"{metrics_url}/health", authority.cert_path) == (200, b'{"health":"true"}')
    with pytest.raises(OSError):  # plain HTTP to a TLS port: the server answers with a TLS alert or closes
        urllib.request.urlopen(f"http://{HOST}:{metrics_url.rsplit(':', 1)[1]}/metrics", timeout=10).read()


@pytest.mark.parametrize("binary", ["etcd", "pyetcd"])
def test_https_metrics_url_without_a_certificate_fails_startup(binary: str, tmp_path: Path) -> None:
    metrics_address = f"{HOST}:{free_port()}"
    server = ServerProcess(binary, "nocert", tmp_path / "nocert.etcd", free_port(), free_port(),
                           extra_args=[f"--listen-metrics-urls=https://{metrics_address}"])
    try:
        server.start(wait=False)
        assert server.process is not None
        server.process.wait(30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{binary_path(binary)} kept running:\n{server.log_tail()}")
    finally:
        server.stop()
    assert server.process.returncode != 0
    assert f"cannot listen on TLS for {metrics_address}: KeyFile and CertFile are not presented" in server.log_tail()
