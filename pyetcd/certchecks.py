"""The certificate checks etcd makes after the TLS handshake, which gRPC cannot make itself.

gRPC verifies the chain and asks for client certificates, but has no CRL, allowed-CN or
allowed-hostname option, nor etcd's check that a peer's certificate names its address. etcd
makes those checks right after the handshake and drops the connection; here they run at the
start of every call (the verified certificate is in the call's auth context), refuse it, and log
the refusal in etcd's words, once per connection.
"""

from __future__ import annotations

import asyncio
import inspect
import ipaddress
import json
import logging
import os
import socket
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from cryptography import x509
from cryptography.x509.oid import NameOID

from pyetcd.relayed_peer import relayed_address
from pyetcd.tlsconfig import TLSInfo

log = logging.getLogger("pyetcd.embed")

ERR_CERTIFICATE_NOT_ALLOWED = "client certificate authentication failed"
REMEMBERED_CONNECTIONS = 4096


def go_quote(text: str) -> str:
    """Go's %q for a string (close enough for addresses and names)."""
    return json.dumps(text, ensure_ascii=False)


def go_quote_list(items: list[str]) -> str:
    return "[" + " ".join(go_quote(item) for item in items) + "]"


def hostname_matches(certificate: x509.Certificate, host: str) -> bool:
    """Go's x509.Certificate.VerifyHostname: IP SANs for an IP, DNS SANs (with `*.` wildcards) otherwise."""
    try:
        sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    if address is not None:
        return address in sans.get_values_for_type(x509.IPAddress)
    wanted = host.lower().rstrip(".")
    for pattern in sans.get_values_for_type(x509.DNSName):
        pattern = pattern.lower().rstrip(".")
        if pattern == wanted:
            return True
        if pattern.startswith("*.") and "." in wanted and wanted.split(".", 1)[1] == pattern[2:]:
            return True
    return False


def common_name(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else ""
    return value if isinstance(value, str) else value.decode()


class RevocationList:
    """A CRL file, read again whenever it changes on disk (etcd reads it at every handshake)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: tuple[float, int] | None = None
        self._revoked: frozenset[int] = frozenset()

    def revoked_serials(self) -> frozenset[int]:
        stat = os.stat(self.path)
        stamp = (stat.st_mtime, stat.st_size)
        if stamp != self._stamp:
            data = Path(self.path).read_bytes()
            crl = (x509.load_pem_x509_crl(data) if b"-----BEGIN" in data else x509.load_der_x509_crl(data))
            self._revoked = frozenset(entry.serial_number for entry in crl)
            self._stamp = stamp
        return self._revoked


def serial_hex(serial: int) -> str:
    """How etcd prints a revoked serial: the big-endian bytes in lower-case hex."""
    return serial.to_bytes(max(1, (serial.bit_length() + 7) // 8), "big").hex()


def _sans(certificate: x509.Certificate) -> tuple[list[str], list[str]]:
    """The certificate's IP and DNS subject alternative names."""
    try:
        sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    return [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)], list(sans.get_values_for_type(x509.DNSName))


async def san_problem(certificate: x509.Certificate, host: str) -> str | None:
    """etcd's checkCertSAN for peers: the certificate must name the address the peer connects from.

    An IP SAN must match it; failing that, a DNS SAN whose reverse or forward lookup gives it.
    """
    ips, dns_names = _sans(certificate)
    if not ips and not dns_names:
        return None
    if ips:
        if hostname_matches(certificate, host):
            return None
        if not dns_names:
            return f"x509: certificate is valid for {', '.join(ips)}, not {host}"
    if await _host_in_dns(host, dns_names):
        return None
    return f"tls: {go_quote(host)} does not match any of DNSNames {go_quote_list(dns_names)}"


async def _host_in_dns(host: str, dns_names: list[str]) -> bool:
    """etcd's isHostInDNS: a reverse lookup of `host` names one of them, or one of them resolves to it."""
    loop = asyncio.get_running_loop()
    wildcards = [name[1:] for name in dns_names if name.startswith("*.")]
    names = [name for name in dns_names if not name.startswith("*.")]
    try:
        primary, aliases, _ = await loop.run_in_executor(None, socket.gethostbyaddr, host)
        for found in (primary, *aliases):
            found = found.rstrip(".")
            if found in names or any(found.endswith(suffix) for suffix in wildcards):
                return True
    except OSError:
        pass
    for name in names:
        try:
            infos = await loop.getaddrinfo(name, None)
        except OSError:
            continue
        if any(info[4][0] == host for info in infos):
            return True
    return False


class CertificateCheck:
    """etcd's checks of a verified certificate after the handshake: allowed CN or hostname, the
    peer's address (peers only), then the CRL."""

    def __init__(self, info: TLSInfo, *, check_san: bool = False) -> None:
        self.info = info
        self.check_san = check_san
        self.crl = RevocationList(info.crl_file) if info.crl_file else None
        self._verdicts: OrderedDict[tuple[str, bytes], str | None] = OrderedDict()

    @property
    def needed(self) -> bool:
        return self.check_san or self.info.checks_certificates

    async def problem(self, certificate: x509.Certificate, remote_host: str | None = None) -> str | None:
        """etcd's error for this certificate, or None when it may connect."""
        if (refused := self.name_problem(certificate)) is not None:
            return refused
        if self.check_san and remote_host is not None:
            problem = await san_problem(certificate, remote_host)
            if problem is not None:
                return problem
        return self.revocation_problem(certificate)

    def certificate_problem(self, certificate: x509.Certificate) -> str | None:
        """The checks a client's certificate gets (allowed CN or hostname, then the CRL), without
        waiting: etcd's error, or None when it may connect."""
        return self.name_problem(certificate) or self.revocation_problem(certificate)

    def name_problem(self, certificate: x509.Certificate) -> str | None:
        """--cert-allowed-cn and --cert-allowed-hostname."""
        if self.info.allowed_cn and common_name(certificate) != self.info.allowed_cn:
            return ERR_CERTIFICATE_NOT_ALLOWED
        if self.info.allowed_hostname and not hostname_matches(certificate, self.info.allowed_hostname):
            return ERR_CERTIFICATE_NOT_ALLOWED
        return None

    def revocation_problem(self, certificate: x509.Certificate) -> str | None:
        if self.crl is not None:
            try:
                revoked = self.crl.revoked_serials()
            except (OSError, ValueError) as err:
                return str(err)
            if certificate.serial_number in revoked:
                return f"transport: certificate serial {serial_hex(certificate.serial_number)} revoked"
        return None

    async def refusal(self, context: grpc.aio.ServicerContext[Any, Any]) -> str | None:
        """Why the call's connection is refused, or None. Each connection is judged and logged once."""
        auth = context.auth_context() or {}
        pem = b"".join(auth.get("x509_pem_cert", ()))
        if not pem:
            return None  # no certificate: a plain-text listener, or TLS without client certificates
        peer = context.peer() or ""
        key = (peer, pem)
        if key in self._verdicts:
            self._verdicts.move_to_end(key)
            return self._verdicts[key]
        certificate = x509.load_pem_x509_certificate(pem)
        verdict = await self.problem(certificate, remote_host(peer))
        if verdict is not None:
            self._log_rejection(peer, auth, certificate, verdict)
        self._verdicts[key] = verdict
        while len(self._verdicts) > REMEMBERED_CONNECTIONS:
            self._verdicts.popitem(last=False)
        return verdict

    @staticmethod
    def _log_rejection(peer: str, auth: dict[str, list[bytes]], certificate: x509.Certificate,
                       error: str) -> None:
        server_name = b"".join(auth.get("ssl_requested_server_name", ())).decode(errors="replace")
        log_rejection(remote_address(peer), server_name, certificate, error)


def log_rejection(address: str, server_name: str, certificate: x509.Certificate, error: str) -> None:
    """etcd's line for a connection dropped after the handshake because of its certificate."""
    ips, dns = _sans(certificate)
    log.info("rejected connection from %s (error %s, ServerName %s, IPAddresses %s, DNSNames %s)",
             go_quote(address), go_quote(error), go_quote(server_name), go_quote_list(ips), go_quote_list(dns))


def remote_address(peer: str) -> str:
    """gRPC's `ipv4:127.0.0.1:5000` / `ipv6:[::1]:5000` as Go prints a remote address (a client relayed
    from the client port by the address it connected from)."""
    relayed = relayed_address(peer)
    if relayed is not None:
        return relayed or "@"
    for prefix in ("ipv4:", "ipv6:", "unix:"):
        if peer.startswith(prefix):
            return peer[len(prefix):] or "@"
    return peer


def remote_host(peer: str) -> str | None:
    """The IP a TCP peer connects from; None for a unix socket, which has no address to check."""
    relayed = relayed_address(peer)
    if relayed:
        return relayed.rsplit(":", 1)[0].strip("[]")
    if peer.startswith("ipv4:"):
        return peer[len("ipv4:"):].rsplit(":", 1)[0]
    if peer.startswith("ipv6:"):
        return peer[len("ipv6:"):].rsplit(":", 1)[0].strip("[]")
    return None


def _guarded(behavior: Callable[..., Any], check: CertificateCheck) -> Callable[..., Any]:
    """`behavior` (a gRPC handler of any shape) preceded by the certificate check."""

    async def refuse(context: grpc.aio.ServicerContext[Any, Any]) -> None:
        problem = await check.refusal(context)
        if problem is not None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, problem)

    if inspect.isasyncgenfunction(behavior):
        async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            await refuse(context)
            async for item in behavior(request, context):
                yield item
        return stream

    async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await refuse(context)
        result = behavior(request, context)
        return await result if inspect.isawaitable(result) else result
    return call


class CertificateCheckInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Runs a CertificateCheck before every call a server handles."""

    def __init__(self, check: CertificateCheck) -> None:
        self.check = check

    async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]],
                                handler_call_details: Any) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        changes = {kind: _guarded(getattr(handler, kind), self.check)
                   for kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
                   if getattr(handler, kind) is not None}
        return handler._replace(**changes)


def server_interceptors(info: TLSInfo, *, check_san: bool = False) -> list[grpc.aio.ServerInterceptor]:
    check = CertificateCheck(info, check_san=check_san)
    return [CertificateCheckInterceptor(check)] if check.needed else []
