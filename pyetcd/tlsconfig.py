"""TLS settings as etcd 3.4 holds them (its transport.TLSInfo), auto-TLS certificates, cipher suites.

This module never imports grpc: the cipher suites must reach gRPC's TLS library through the
GRPC_SSL_CIPHER_SUITES environment variable before grpc is first imported, so the command line
resolves them here, sets the variable, and only then starts the server (see `apply_cipher_suites`).
The gRPC credentials built from these settings live in pyetcd/tlscredentials.py.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger("pyetcd.embed")

GRPC_CIPHER_SUITES_VARIABLE = "GRPC_SSL_CIPHER_SUITES"
SECURE_SCHEMES = ("https", "unixs")
UNIX_SCHEMES = ("unix", "unixs")

# Go's crypto/tls names (what etcd's --cipher-suites takes) -> the names gRPC's TLS library
# (BoringSSL) knows for the same TLS 1.2 suites.
TLS12_CIPHER_SUITES = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    # etcd's tlsutil also takes the names Go used before 1.14.
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
}
# TLS 1.3 suites: Go accepts their names but always enables them (they are not configurable),
# and etcd 3.4 negotiates TLS 1.3 whatever --cipher-suites says; BoringSSL behaves the same.
TLS13_CIPHER_SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")
# Names Go knows (tls.InsecureCipherSuites) for suites gRPC's TLS library cannot offer at all.
UNAVAILABLE_CIPHER_SUITES = (
    "TLS_RSA_WITH_RC4_128_SHA", "TLS_RSA_WITH_3DES_EDE_CBC_SHA", "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA", "TLS_ECDHE_RSA_WITH_RC4_128_SHA", "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
)


class CipherSuiteError(ValueError):
    """A --cipher-suites name etcd does not know, or one pyetcd's TLS library cannot offer."""


@dataclass(frozen=True, slots=True)
class TLSInfo:
    """One side's TLS settings (clients or peers), field for field etcd's transport.TLSInfo."""

    cert_file: str = ""
    key_file: str = ""
    trusted_ca_file: str = ""
    client_cert_auth: bool = False
    crl_file: str = ""
    allowed_cn: str = ""
    allowed_hostname: str = ""
    skip_client_san_verify: bool = False
    """Peers only: do not check that a peer's certificate names its address (etcd's experimental flag)."""
    self_cert: bool = False
    """Made by auto-TLS: whoever dials with it does not verify the other side (etcd's selfCert)."""

    @property
    def empty(self) -> bool:
        return not self.cert_file and not self.key_file

    @property
    def requires_client_certificate(self) -> bool:
        """etcd asks for and verifies a client certificate when a CA is given or --client-cert-auth is on."""
        return bool(self.trusted_ca_file) or self.client_cert_auth

    @property
    def checks_certificates(self) -> bool:
        """Whether a verified certificate must also pass a CRL, allowed-CN or allowed-hostname check."""
        return bool(self.crl_file or self.allowed_cn or self.allowed_hostname)

    def __str__(self) -> str:
        return (f"cert = {self.cert_file}, key = {self.key_file}, trusted-ca = {self.trusted_ca_file}, "
                f"client-cert-auth = {'true' if self.client_cert_auth else 'false'}, crl-file = {self.crl_file}")


def files_stamp(paths: Sequence[str]) -> tuple[tuple[float, int], ...]:
    """Modification time and size of each file ((0, -1) when absent or unnamed): what tells that one
    changed, so certificates are read again at the next connection, as etcd does."""
    stamps = []
    for path in paths:
        try:
            stat = os.stat(path) if path else None
        except OSError:
            stat = None
        stamps.append((stat.st_mtime, stat.st_size) if stat else (0.0, -1))
    return tuple(stamps)


def is_secure_url(url: str) -> bool:
    return urlsplit(url).scheme in SECURE_SCHEMES


def listen_address(url: str) -> str:
    """The address a listener binds for `url`, as gRPC names it: `host:port` or `unix:path`.

    etcd listens on a unix socket named by the URL's host and path (`unix://localhost:2379` is the
    file `localhost:2379` in the working directory).
    """
    parts = urlsplit(url)
    if parts.scheme in UNIX_SCHEMES:
        return "unix:" + parts.netloc + parts.path
    return parts.netloc


def grpc_cipher_list(names: Sequence[str]) -> str:
    """--cipher-suites as the colon-separated list gRPC's TLS library takes; refuses unknown names."""
    chosen: list[str] = []
    for name in names:
        if name in TLS13_CIPHER_SUITES:
            continue
        if name in UNAVAILABLE_CIPHER_SUITES:
            raise CipherSuiteError(f"TLS cipher suite {name!r} is not supported by pyetcd's TLS library")
        mapped = TLS12_CIPHER_SUITES.get(name)
        if mapped is None:
            raise CipherSuiteError(f'unexpected TLS cipher suite "{name}"')
        if mapped not in chosen:
            chosen.append(mapped)
    if not chosen:
        raise CipherSuiteError("--cipher-suites names only TLS 1.3 suites, which are always enabled; "
                               "name at least one TLS 1.2 suite")
    return ":".join(chosen)


def apply_cipher_suites(names: Sequence[str], environ: dict[str, str] | None = None) -> None:
    """Restrict TLS 1.2 to `names` for every gRPC listener and dialer of this process.

    gRPC reads the variable once, when it is first imported; a later change would silently do
    nothing, so that is refused instead.
    """
    if not names:
        return
    target = os.environ if environ is None else environ
    value = grpc_cipher_list(names)
    if "grpc" in sys.modules and target.get(GRPC_CIPHER_SUITES_VARIABLE) != value:
        raise CipherSuiteError("cipher suites must be chosen before gRPC is loaded")
    target[GRPC_CIPHER_SUITES_VARIABLE] = value


def split_cipher_suites(value: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in value.split(",") if name.strip())


# -- auto-TLS --------------------------------------------------------------------------------


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def self_cert(directory: str, hosts: Sequence[str]) -> TLSInfo:
    """etcd's transport.SelfCert: a self-signed certificate for `hosts` (host:port), made once.

    As etcd 3.4: an ECDSA key, organisation "etcd", valid a year, server-auth usage, IP or DNS
    names from the hosts; `cert.pem` and `key.pem` in `directory` are reused when present. etcd's
    key is on P-521, which gRPC's TLS library (BoringSSL) will not sign handshakes with, so ours
    is on P-384.
    """
    os.makedirs(directory, mode=0o700, exist_ok=True)
    cert_path = os.path.join(directory, "cert.pem")
    key_path = os.path.join(directory, "key.pem")
    if os.path.exists(cert_path) and os.path.exists(key_path):
        return TLSInfo(cert_file=cert_path, key_file=key_path, self_cert=True)
    key = ec.generate_private_key(ec.SECP384R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "etcd")])
    names: list[x509.GeneralName] = []
    for host in hosts:
        name = urlsplit(f"//{host}").hostname or host
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            names.append(x509.DNSName(name))
    now = _now()
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    certificate = builder.sign(key, hashes.SHA256())
    with open(cert_path, "wb") as out:
        out.write(certificate.public_bytes(serialization.Encoding.PEM))
    log.info("created cert file %s", cert_path)
    key_fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(key_fd, "wb") as out:
        out.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption()))
    log.info("created key file %s", key_path)
    return TLSInfo(cert_file=cert_path, key_file=key_path, self_cert=True)


def with_auto_tls(info: TLSInfo, auto_tls: bool, directory: str, listen_urls: Sequence[str],
                  side: str) -> TLSInfo:
    """etcd's ClientSelfCert/PeerSelfCert: given certificates win; otherwise make one for the listen hosts."""
    if not auto_tls:
        return info
    if not info.empty:
        log.warning("ignoring %s auto TLS since certs given", side)
        return info
    # As etcd, the generated certificate replaces the whole setting: a CA, --client-cert-auth or a
    # CRL given beside --auto-tls no longer apply.
    return self_cert(directory, [urlsplit(url).netloc for url in listen_urls])
