"""python-etcd3 and npm etcd3 over TLS with client certificates, against pyetcd and a real etcd.

Both members serve clients on https with `--client-cert-auth` and a CA made for the test; the clients
are given the CA and a client certificate, as production deployments run them. aetcd 1.0.0 has no TLS
settings, so it is not among them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clients.side_by_side import (
    Command,
    client_python,
    enable_auth,
    node_binary,
    run_side_by_side,
    start_pair,
)
from tests.helpers.certs import CertFiles, CertificateAuthority
from tests.helpers.servers import HOST, ServerProcess, free_port
from tests.helpers.tlsservers import ClientCredentials, TLSServerProcess


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[CertificateAuthority, CertFiles, CertFiles]:
    """A CA, the members' certificate, and a client certificate."""
    authority = CertificateAuthority(tmp_path_factory.mktemp("client-pki"))
    return authority, authority.issue("member", common_name="member"), authority.issue("client")


def tls_pair(base: Path, pki: tuple[CertificateAuthority, CertFiles, CertFiles]) -> dict[str, ServerProcess]:
    """etcd and pyetcd serving clients on https, a client certificate required; not started."""
    authority, member, client = pki
    flags = [f"--cert-file={member.cert}", f"--key-file={member.key}", f"--trusted-ca-file={authority.cert_path}",
             "--client-cert-auth"]
    pair: dict[str, ServerProcess] = {
        binary: TLSServerProcess(binary, "n1", base / f"{binary}.etcd", free_port(), free_port(), extra_args=flags,
                                 client_scheme="https", peer_scheme="http",
                                 credentials=ClientCredentials(cacert=authority.cert_path, cert=client))
        for binary in ("etcd", "pyetcd")}
    return pair


@pytest.fixture(scope="module")
def tls_servers(tmp_path_factory: pytest.TempPathFactory,
                pki: tuple[CertificateAuthority, CertFiles, CertFiles]) -> Iterator[dict[str, ServerProcess]]:
    pair = tls_pair(tmp_path_factory.mktemp("client-tls-servers"), pki)
    try:
        start_pair(pair)
        yield pair
    finally:
        for server in pair.values():
            server.stop()


@pytest.fixture(scope="module")
def tls_auth_servers(tmp_path_factory: pytest.TempPathFactory,
                     pki: tuple[CertificateAuthority, CertFiles, CertFiles]) -> Iterator[dict[str, ServerProcess]]:
    """The https pair with auth on, set up as tests/clients/conftest.py's AUTH_SETUP says."""
    pair = tls_pair(tmp_path_factory.mktemp("client-tls-auth-servers"), pki)
    try:
        start_pair(pair)
        enable_auth(pair)
        yield pair
    finally:
        for server in pair.values():
            server.stop()


def tls_files(pki: tuple[CertificateAuthority, CertFiles, CertFiles], *, with_certificate: bool = True
              ) -> dict[str, str]:
    authority, _, client = pki
    files = {"CLIENT_CA": str(authority.cert_path)}
    if with_certificate:
        files |= {"CLIENT_CERT": str(client.cert), "CLIENT_KEY": str(client.key)}
    return files


def python_etcd3(scenario: str) -> Command:
    def command(server: ServerProcess) -> list[str]:
        return [client_python("etcd3"), "drive_etcd3.py", scenario, HOST, str(server.client_port),
                f"/tls-etcd3-{scenario}"]
    return command


def npm_etcd3(scenario: str) -> Command:
    def command(server: ServerProcess) -> list[str]:
        return [node_binary(), "node/scenario.js", scenario, f"{HOST}:{server.client_port}", f"/tls-npm-{scenario}"]
    return command


@pytest.mark.parametrize("scenario", ["kv"])
def test_python_etcd3_over_tls(scenario: str, tls_servers: dict[str, ServerProcess],
                               pki: tuple[CertificateAuthority, CertFiles, CertFiles]) -> None:
    seen = run_side_by_side(python_etcd3(scenario), tls_servers, env=tls_files(pki))
    assert seen["etcd"]["put_prev"] == "1" and seen["etcd"]["replace"] == [True, False]
    assert seen["pyetcd"] == seen["etcd"]


def test_python_etcd3_without_a_client_certificate_is_refused(
        tls_servers: dict[str, ServerProcess], pki: tuple[CertificateAuthority, CertFiles, CertFiles]) -> None:
    seen = run_side_by_side(python_etcd3("refused"), tls_servers, env=tls_files(pki, with_certificate=False))
    assert seen["etcd"] == {"error": "ConnectionFailedError"}
    assert seen["pyetcd"] == seen["etcd"]


@pytest.mark.parametrize("scenario", ["kv", "watch"])
def test_npm_etcd3_over_tls(scenario: str, tls_servers: dict[str, ServerProcess],
                            pki: tuple[CertificateAuthority, CertFiles, CertFiles]) -> None:
    seen = run_side_by_side(npm_etcd3(scenario), tls_servers, env=tls_files(pki))
    if scenario == "kv":
        assert seen["etcd"]["get"] == "1b" and seen["etcd"]["after"] == 0
    else:
        assert [event[0] for event in seen["etcd"]["live"]] == ["put", "put", "delete"]
    assert seen["pyetcd"] == seen["etcd"]


def test_python_etcd3_auth_over_tls(tls_auth_servers: dict[str, ServerProcess],
                                    pki: tuple[CertificateAuthority, CertFiles, CertFiles]) -> None:
    """User and password connections; etcd's refusals reach python-etcd3 code as etcd's own."""
    seen = run_side_by_side(python_etcd3("auth"), tls_auth_servers, env=tls_files(pki))
    assert seen["etcd"]["read"] == "v1" and seen["etcd"]["root"] == ["by root", 1]
    assert seen["etcd"]["write"] == {"error": "_InactiveRpcError", "code": "PERMISSION_DENIED",
                                     "details": "etcdserver: permission denied"}
    assert seen["etcd"]["wrong_password"] == {
        "error": "_InactiveRpcError", "code": "INVALID_ARGUMENT",
        "details": "etcdserver: authentication failed, invalid user ID or password"}
    assert seen["pyetcd"] == seen["etcd"]
