"""Fixtures of the TLS tests: a fresh PKI, and members started with TLS flags (always stopped)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.certs import CertFiles, CertificateAuthority
from tests.helpers.servers import HOST, free_port
from tests.helpers.tlsservers import ClientCredentials, TLSServerProcess, start_all, stop_all, tls_cluster


@dataclass(frozen=True)
class PKI:
    """What an operator's CA would hand out: member, client, and refused certificates, and a CRL."""

    authority: CertificateAuthority
    ca: Path
    member: CertFiles  # CN "member": serves clients and peers, and dials peers
    intruder: CertFiles  # same CA, CN "intruder": not an allowed peer
    misplaced: CertFiles  # CN "member", but made for another address (10.9.9.9)
    client: CertFiles  # no Common Name: etcdctl's and the grpc-proxy's certificate
    named_client: CertFiles  # CN "root": a client certificate that names a user
    revoked: CertFiles  # listed in `crl`
    crl: Path

    def client_credentials(self, cert: CertFiles | None = None) -> ClientCredentials:
        return ClientCredentials(cacert=self.ca, cert=cert or self.client)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    authority = CertificateAuthority(tmp_path_factory.mktemp("pki"))
    revoked = authority.issue("revoked")
    authority.revoke(revoked)
    return PKI(authority=authority, ca=authority.cert_path, member=authority.issue("member", common_name="member"),
               intruder=authority.issue("intruder", common_name="intruder"),
               misplaced=authority.issue("misplaced", common_name="member", hosts=("10.9.9.9",)),
               client=authority.issue("client"),
               named_client=authority.issue("root", common_name="root"), revoked=revoked,
               crl=authority.write_crl())


def secure_member_flags(pki: PKI) -> list[str]:
    """Client and peer TLS as a locked-down etcd runs it: certificates both ways, a CRL, one allowed CN."""
    return [
        f"--cert-file={pki.member.cert}", f"--key-file={pki.member.key}", f"--trusted-ca-file={pki.ca}",
        "--client-cert-auth", f"--client-crl-file={pki.crl}",
        f"--peer-cert-file={pki.member.cert}", f"--peer-key-file={pki.member.key}",
        f"--peer-trusted-ca-file={pki.ca}", "--peer-client-cert-auth", "--peer-cert-allowed-cn=member",
        f"--peer-crl-file={pki.crl}",
    ]


def https_metrics_url_flag() -> str:
    return f"--listen-metrics-urls=https://{HOST}:{free_port()}"


@pytest.fixture(scope="module")
def tls_only_cluster(pki: PKI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[TLSServerProcess]]:
    """Three pyetcd members speaking only TLS, to clients and to each other."""
    members = tls_cluster("pyetcd", tmp_path_factory.mktemp("tls-cluster"), 3,
                          [secure_member_flags(pki)] * 3, credentials=pki.client_credentials())
    try:
        start_all(members)
        yield members
    finally:
        stop_all(members)


@pytest.fixture(scope="module")
def real_etcd_member(pki: PKI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSServerProcess]:
    """One real etcd member with the same TLS flags, to compare refusals and log lines with; and an https
    metrics URL, which etcd serves with the client TLS settings."""
    (member,) = tls_cluster("etcd", tmp_path_factory.mktemp("etcd-tls"), 1,
                            [[*secure_member_flags(pki), https_metrics_url_flag()]],
                            credentials=pki.client_credentials())
    try:
        start_all([member])
        yield member
    finally:
        member.stop()
