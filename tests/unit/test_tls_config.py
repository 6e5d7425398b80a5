"""TLS settings from flags, ETCD_* variables and the config file, and the certificate checks, as etcd reads them."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from pyetcd.certchecks import CertificateCheck, hostname_matches, serial_hex
from pyetcd.config import ConfigError, FatalConfigError, parse_server_args
from pyetcd.tlsconfig import CipherSuiteError, TLSInfo, grpc_cipher_list, listen_address, self_cert
from tests.helpers.certs import CertificateAuthority

TLS_MEMBER = ["--name=m", "--listen-client-urls=https://127.0.0.1:2379", "--advertise-client-urls=https://127.0.0.1:2379",
              "--listen-peer-urls=https://127.0.0.1:2380", "--initial-advertise-peer-urls=https://127.0.0.1:2380",
              "--initial-cluster=m=https://127.0.0.1:2380"]


def test_every_tls_flag_reaches_the_config() -> None:
    config = parse_server_args([*TLS_MEMBER, "--cert-file=c.pem", "--key-file=k.pem", "--trusted-ca-file=ca.pem",
                                "--client-cert-auth", "--client-crl-file=crl.pem",
                                "--client-cert-allowed-hostname=client.example", "--peer-cert-file=pc.pem",
                                "--peer-key-file=pk.pem", "--peer-trusted-ca-file=pca.pem", "--peer-client-cert-auth",
                                "--peer-crl-file=pcrl.pem", "--peer-cert-allowed-cn=member",
                                "--cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_AES_128_GCM_SHA256"],
                               environ={})
    assert config is not None
    assert config.client_tls == TLSInfo("c.pem", "k.pem", "ca.pem", True, "crl.pem", "", "client.example")
    assert config.peer_tls == TLSInfo("pc.pem", "pk.pem", "pca.pem", True, "pcrl.pem", "member", "")
    assert config.cipher_suites == ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256")


def test_tls_flags_come_from_etcd_environment_variables() -> None:
    config = parse_server_args(TLS_MEMBER, environ={
        "ETCD_CERT_FILE": "c.pem", "ETCD_KEY_FILE": "k.pem", "ETCD_CLIENT_CERT_AUTH": "true",
        "ETCD_PEER_AUTO_TLS": "true", "ETCD_PEER_CERT_ALLOWED_HOSTNAME": "peer.example",
        "ETCD_CIPHER_SUITES": "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"})
    assert config is not None
    assert (config.client_tls.cert_file, config.client_tls.key_file, config.client_tls.client_cert_auth) == \
        ("c.pem", "k.pem", True)
    assert config.peer_auto_tls and config.peer_tls.allowed_hostname == "peer.example"
    assert config.cipher_suites == ("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",)


def test_config_file_takes_etcds_transport_security_sections(tmp_path: Path) -> None:
    path = tmp_path / "etcd.yaml"
    path.write_text("""
name: m
listen-client-urls: https://127.0.0.1:2379
advertise-client-urls: https://127.0.0.1:2379
listen-peer-urls: https://127.0.0.1:2380
initial-advertise-peer-urls: https://127.0.0.1:2380
initial-cluster: m=https://127.0.0.1:2380
cert-file: ignored-as-etcd-ignores-it.pem
client-transport-security:
  cert-file: c.pem
  key-file: k.pem
  client-cert-auth: true
  trusted-ca-file: ca.pem
peer-transport-security:
  auto-tls: true
  client-cert-auth: false
cipher-suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]
ClientTLSInfo:
  CRLFile: crl.pem
PeerTLSInfo:
  allowedcn: member
""")
    config = parse_server_args([f"--config-file={path}"], environ={})
    assert config is not None
    assert config.client_tls == TLSInfo("c.pem", "k.pem", "ca.pem", True, "crl.pem")
    assert config.peer_auto_tls and config.peer_tls == TLSInfo(allowed_cn="member")
    assert config.cipher_suites == ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384")


def test_config_file_refuses_a_security_section_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "etcd.yaml"
    path.write_text("client-transport-security: yes-please\n")
    with pytest.raises(ConfigError, match="configYAML.client-transport-security of type embed.securityConfig"):
        parse_server_args([f"--config-file={path}"], environ={})


@pytest.mark.parametrize(("flags", "message"), [
    (["--cipher-suites=TLS_FOO"], 'unexpected TLS cipher suite "TLS_FOO"'),
    (["--cipher-suites=TLS_RSA_WITH_RC4_128_SHA"], "not supported by pyetcd's TLS library"),
    (["--peer-cert-file=c", "--peer-key-file=k", "--peer-cert-allowed-cn=a", "--peer-cert-allowed-hostname=b"],
     'AllowedCN and AllowedHostname are mutually exclusive (cn="a", hostname="b")'),
    (["--peer-auto-tls"], "TLS key/cert (--cert-file, --key-file) must be provided for client url "
                          "https://127.0.0.1:2379 with HTTPS scheme"),
])
def test_tls_flags_etcd_refuses_at_start(flags: list[str], message: str) -> None:
    with pytest.raises(FatalConfigError) as refused:
        parse_server_args([*TLS_MEMBER, *flags], environ={})
    assert message in str(refused.value)


def test_cipher_suites_become_grpcs_tls12_list() -> None:
    assert grpc_cipher_list(["TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", "TLS_AES_256_GCM_SHA384",
                             "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]) == \
        "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256"
    with pytest.raises(CipherSuiteError, match="only TLS 1.3 suites"):
        grpc_cipher_list(["TLS_AES_128_GCM_SHA256"])


def test_unix_urls_listen_on_the_socket_file_etcd_names() -> None:
    assert listen_address("unixs://localhost:2379") == "unix:localhost:2379"
    assert listen_address("https://127.0.0.1:2379") == "127.0.0.1:2379"


def test_self_cert_is_made_once_and_reused(tmp_path: Path) -> None:
    first = self_cert(str(tmp_path / "fixtures"), ["127.0.0.1:2379", "node1.example:2379"])
    again = self_cert(str(tmp_path / "fixtures"), ["10.0.0.1:2379"])
    assert first == again and first.self_cert
    certificate = x509.load_pem_x509_certificate(Path(first.cert_file).read_bytes())
    assert hostname_matches(certificate, "127.0.0.1") and hostname_matches(certificate, "node1.example")
    assert not hostname_matches(certificate, "10.0.0.1")


async def test_certificate_check_refuses_revoked_and_disallowed_certificates(tmp_path: Path) -> None:
    authority = CertificateAuthority(tmp_path)
    good = authority.issue("good", common_name="member", hosts=("*.example.com",))
    bad = authority.issue("bad", common_name="member")
    authority.revoke(bad)
    crl = authority.write_crl()

    def load(path: Path) -> x509.Certificate:
        return x509.load_pem_x509_certificate(path.read_bytes())

    check = CertificateCheck(TLSInfo(crl_file=str(crl), allowed_cn="member"))
    assert await check.problem(load(good.cert)) is None
    assert await check.problem(load(bad.cert)) == f"transport: certificate serial {serial_hex(bad.serial)} revoked"
    assert await CertificateCheck(TLSInfo(allowed_cn="other")).problem(load(good.cert)) == \
        "client certificate authentication failed"
    by_host = CertificateCheck(TLSInfo(allowed_hostname="a.example.com"))
    assert await by_host.problem(load(good.cert)) is None
    assert await by_host.problem(load(bad.cert)) == "client certificate authentication failed"


async def test_a_peer_certificate_must_name_the_address_it_connects_from(tmp_path: Path) -> None:
    authority = CertificateAuthority(tmp_path)
    by_ip = x509.load_pem_x509_certificate(authority.issue("ip", hosts=("127.0.0.1",)).cert.read_bytes())
    by_name = x509.load_pem_x509_certificate(authority.issue("dns", hosts=("localhost",)).cert.read_bytes())
    check = CertificateCheck(TLSInfo(), check_san=True)
    assert await check.problem(by_ip, "127.0.0.1") is None
    assert await check.problem(by_ip, "127.0.0.2") == "x509: certificate is valid for 127.0.0.1, not 127.0.0.2"
    assert await check.problem(by_name, "127.0.0.1") is None  # localhost resolves to it
    assert await check.problem(by_name, "127.0.0.2") == 'tls: "127.0.0.2" does not match any of DNSNames ["localhost"]'
    assert await check.problem(by_ip, None) is None  # a unix socket has no address to check


def test_serials_print_as_etcd_prints_them() -> None:
    assert serial_hex(0x00ABCDEF) == "abcdef"
    assert serial_hex(1) == "01"
