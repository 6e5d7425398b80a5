"""One member with TLS flags, pyetcd beside real etcd: auto-TLS, cipher suites, and refused configurations."""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.helpers.servers import HOST, binary_path, etcdctl_env, free_port
from tests.helpers.tlsservers import ClientCredentials, TLSServerProcess, start_all, tls_cluster, tls_handshake
from tests.tls.conftest import PKI

BINARIES = ["pyetcd", "etcd"]
LISTED = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"


@pytest.fixture(scope="module", params=BINARIES)
def auto_tls_member(request: pytest.FixtureRequest,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSServerProcess]:
    """A member with --auto-tls and one allowed TLS 1.2 cipher suite, on https and unixs client URLs."""
    root = tmp_path_factory.mktemp(f"auto-tls-{request.param}")
    (member,) = tls_cluster(request.param, root, 1, [[f"--cipher-suites={LISTED}"]], peer_scheme="http")
    member.extra_args = [*member.extra_args, "--auto-tls",
                         f"--listen-client-urls={member.client_url},unixs://localhost:{free_port()}"]
    member.credentials = ClientCredentials(insecure_skip_verify=True)
    try:
        start_all([member])
        yield member
    finally:
        member.stop()


def etcdctl_insecure(member: TLSServerProcess, endpoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    """etcdctl trusting whatever certificate it is shown, run where the member's unix sockets are."""
    return subprocess.run(["etcdctl", f"--endpoints={endpoint}", *member.credentials.flags(), *args],
                          env=etcdctl_env(), capture_output=True, text=True, timeout=30, cwd=member.working_dir)


def test_auto_tls_serves_etcdctl_on_https_and_unixs(auto_tls_member: TLSServerProcess) -> None:
    listen = next(arg for arg in auto_tls_member.extra_args if arg.startswith("--listen-client-urls="))
    unix_url = listen.split(",")[-1]
    put = etcdctl_insecure(auto_tls_member, auto_tls_member.client_url, "put", "auto/k", "v")
    assert (put.returncode, put.stdout) == (0, "OK\n"), put.stderr
    got = etcdctl_insecure(auto_tls_member, unix_url, "get", "auto/k", "--print-value-only")
    assert (got.returncode, got.stdout) == (0, "v\n"), got.stderr


def test_auto_tls_makes_a_self_signed_certificate_as_etcd_does(auto_tls_member: TLSServerProcess) -> None:
    fixtures = auto_tls_member.data_dir / "fixtures" / "client"
    certificate = x509.load_pem_x509_certificate((fixtures / "cert.pem").read_bytes())
    assert (fixtures / "key.pem").stat().st_mode & 0o777 == 0o600
    assert certificate.issuer == certificate.subject
    assert certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "etcd"
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME) == []
    assert isinstance(certificate.public_key(), ec.EllipticCurvePublicKey)
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert 364 <= lifetime.days <= 365
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment and not usage.key_cert_sign
    assert list(certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH]
    sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == [HOST]
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]


def test_a_client_offering_none_of_the_cipher_suites_fails_the_tls_handshake(auto_tls_member: TLSServerProcess) -> None:
    port = auto_tls_member.client_port
    refused = tls_handshake(port, ciphers="ECDHE-ECDSA-AES256-GCM-SHA384")
    # etcd (Go) answers with a handshake_failure alert; gRPC's TLS library just closes the connection.
    assert refused in ("refused: SSLV3_ALERT_HANDSHAKE_FAILURE", "refused: UNEXPECTED_EOF_WHILE_READING")
    assert tls_handshake(port, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384") == \
        "ECDHE-ECDSA-AES128-GCM-SHA256"
    # As in etcd 3.4 (Go), TLS 1.3 suites are not configurable: a TLS 1.3 client still connects.
    assert tls_handshake(port, tls13=True).startswith("TLS_AES_")
    # The HTTP side of the port (what curl and browsers reach) takes the same suites, and closes too.
    assert tls_handshake(port, ciphers="ECDHE-ECDSA-AES256-GCM-SHA384", alpn="http/1.1") in \
        ("refused: SSLV3_ALERT_HANDSHAKE_FAILURE", "refused: UNEXPECTED_EOF_WHILE_READING")
    assert tls_handshake(port, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384",
                         alpn="http/1.1") == "ECDHE-ECDSA-AES128-GCM-SHA256"


def start_refused(binary: str, tmp_path: Path, *flags: str) -> tuple[int, str]:
    """Start a member that must refuse its flags: the exit status and the last line, without the time."""
    client, peer = free_port(), free_port()
    peer_scheme = "https" if any(flag.startswith("--peer-tls") for flag in flags) else "http"
    flags = tuple(flag for flag in flags if not flag.startswith("--peer-tls"))
    command = [binary_path(binary), "--name=n", f"--data-dir={tmp_path / binary}",
               f"--listen-client-urls=http://{HOST}:{client}", f"--advertise-client-urls=http://{HOST}:{client}",
               f"--listen-peer-urls={peer_scheme}://{HOST}:{peer}",
               f"--initial-advertise-peer-urls={peer_scheme}://{HOST}:{peer}",
               f"--initial-cluster=n={peer_scheme}://{HOST}:{peer}", *flags]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    last = result.stderr.strip().splitlines()[-1]
    return result.returncode, re.sub(r"^\S+ \S+ ", "", last)


@pytest.mark.parametrize("flags", [
    pytest.param(("--cipher-suites=TLS_NO_SUCH_SUITE",), id="unknown-cipher-suite"),
    pytest.param(("--listen-client-urls=https://127.0.0.1:{port}",), id="https-clients-without-certificates"),
    pytest.param(("--peer-tls",), id="https-peers-without-certificates"),
])
def test_tls_flags_etcd_refuses_are_refused_in_its_words(flags: tuple[str, ...], tmp_path: Path) -> None:
    flags = tuple(flag.replace("{port}", str(free_port())) for flag in flags)
    pyetcd = start_refused("pyetcd", tmp_path, *flags)
    etcd = start_refused("etcd", tmp_path, *flags)
    assert pyetcd[0] == etcd[0] == 1
    # Ports differ between the two runs only where the refusal names the URL.
    assert re.sub(r":\d+", ":PORT", pyetcd[1]) == re.sub(r":\d+", ":PORT", etcd[1])


def test_pki_fixture_revokes_only_the_revoked_certificate(pki: PKI) -> None:
    crl = x509.load_pem_x509_crl(pki.crl.read_bytes())
    assert [entry.serial_number for entry in crl] == [pki.revoked.serial]


def served_serial(port: int, alpn: str = "h2") -> int:
    """The serial number of the certificate a TLS listener presents to a client offering `alpn`
    (`h2`: gRPC's side of a client port, `http/1.1`: its HTTP side)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols([alpn])
    with socket.create_connection((HOST, port), timeout=5) as raw, context.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


@pytest.mark.parametrize("binary", BINARIES)
def test_a_rotated_certificate_is_served_without_a_restart(binary: str, pki: PKI, tmp_path: Path) -> None:
    cert, key = tmp_path / "server.pem", tmp_path / "server-key.pem"
    first = pki.authority.issue(f"rotate-{binary}-1", common_name="member")
    cert.write_bytes(first.cert.read_bytes())
    key.write_bytes(first.key.read_bytes())
    (member,) = tls_cluster(binary, tmp_path, 1, [[f"--cert-file={cert}", f"--key-file={key}"]], peer_scheme="http",
                            credentials=ClientCredentials(cacert=pki.ca))
    try:
        start_all([member])
        assert served_serial(member.client_port) == first.serial
        second = pki.authority.issue(f"rotate-{binary}-2", common_name="member")
        key.write_bytes(second.key.read_bytes())
        cert.write_bytes(second.cert.read_bytes())
        assert served_serial(member.client_port) == second.serial
        assert served_serial(member.client_port, alpn="http/1.1") == second.serial
        assert member.etcdctl("put", "rotated", "yes").stdout == "OK\n"
    finally:
        member.stop()
