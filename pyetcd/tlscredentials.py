"""gRPC credentials from etcd's TLS settings: listeners (reloading changed files) and peer dialers.

The checks gRPC cannot make itself (CRL, allowed CN or hostname, the peer's address) live in
pyetcd/certchecks.py.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import grpc.aio
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pyetcd.certchecks import server_interceptors
from pyetcd.tlsconfig import TLSInfo, files_stamp, is_secure_url

log = logging.getLogger("pyetcd.embed")



def _read(path: str) -> bytes:
    return Path(path).read_bytes()


def _system_roots() -> bytes | None:
    """The system's CA bundle: what Go verifies client certificates against when no CA file is given."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and os.path.exists(candidate):
            return _read(candidate)
    return None


class CertificateFiles:
    """A listener's certificate, key and CA files, read again when they change on disk.

    etcd reads its certificate at every handshake, so an operator can rotate it without a restart;
    gRPC asks this before each new connection's handshake.
    """

    def __init__(self, info: TLSInfo) -> None:
        self.info = info
        self.require_client_certificate = info.requires_client_certificate
        self._stamp = self._files_stamp()
        self.initial = self._configuration()

    def _files_stamp(self) -> tuple[tuple[float, int], ...]:
        return files_stamp([self.info.cert_file, self.info.key_file, self.info.trusted_ca_file])

    def _configuration(self) -> Any:
        roots = _read(self.info.trusted_ca_file) if self.info.trusted_ca_file else None
        if self.require_client_certificate and roots is None:
            roots = _system_roots()
        return grpc.ssl_server_certificate_configuration([(_read(self.info.key_file), _read(self.info.cert_file))],
                                                         root_certificates=roots)

    def fetch(self) -> Any:
        """A new configuration when a file changed, else None (gRPC keeps the one it has)."""
        stamp = self._files_stamp()
        if stamp == self._stamp:
            return None
        try:
            configuration = self._configuration()
        except (OSError, ValueError) as err:
            log.warning("failed to reload certificate files (%s); keeping the ones in use", err)
            return None
        self._stamp = stamp
        return configuration


def server_credentials(info: TLSInfo) -> grpc.ServerCredentials:
    """A listener's credentials, asking for client certificates when etcd would (a CA, or --client-cert-auth);
    changed certificate files take effect at the next connection, as in etcd."""
    files = CertificateFiles(info)
    return grpc.dynamic_ssl_server_credentials(files.initial, files.fetch,
                                               require_client_authentication=files.require_client_certificate)


def channel_credentials(info: TLSInfo, pinned_server_cert: bytes | None = None) -> grpc.ChannelCredentials:
    """Credentials to dial a TLS peer: our certificate as the client's, the CA (or a pinned certificate)."""
    roots = pinned_server_cert or (_read(info.trusted_ca_file) if info.trusted_ca_file else None)
    if info.empty:
        return grpc.ssl_channel_credentials(root_certificates=roots)
    return grpc.ssl_channel_credentials(root_certificates=roots, private_key=_read(info.key_file),
                                        certificate_chain=_read(info.cert_file))


# -- dialing peers -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeerSecurity:
    """The peer side's TLS as the transport uses it: how to listen on, and how to dial, TLS URLs."""

    info: TLSInfo

    @property
    def listens_securely(self) -> bool:
        return not self.info.empty

    def server_credentials(self) -> grpc.ServerCredentials:
        return server_credentials(self.info)

    def server_interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        """etcd checks that a peer's certificate names the address it connects from, unless told not to."""
        return server_interceptors(self.info, check_san=not self.info.empty and not self.info.skip_client_san_verify)

    async def dial_credentials(self, url: str) -> grpc.ChannelCredentials | None:
        """None for a plain-text URL; for a TLS one, our certificate and the CA to verify the peer.

        With auto-TLS etcd does not verify the peer at all; gRPC always verifies, so the peer's own
        certificate is fetched first and trusted for this connection, which verifies no more.
        """
        if not is_secure_url(url):
            return None
        pinned = await fetch_certificate(url) if self.info.self_cert else None
        return channel_credentials(self.info, pinned)


async def fetch_certificate(url: str, timeout: float = 2.0) -> bytes | None:
    """The certificate a TLS peer presents, unverified (what etcd's InsecureSkipVerify accepts)."""
    parts = urlsplit(url)
    if parts.hostname is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    if parts.scheme == "unixs":
        connecting = asyncio.open_unix_connection(parts.netloc + parts.path, ssl=context,
                                                  server_hostname=parts.hostname)
    else:
        connecting = asyncio.open_connection(parts.hostname, parts.port, ssl=context)
    try:
        _, writer = await asyncio.wait_for(connecting, timeout)
    except (OSError, TimeoutError, ssl.SSLError, ValueError):
        return None
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
    if not der:
        return None
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
