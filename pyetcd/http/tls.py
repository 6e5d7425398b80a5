"""TLS for the HTTP side of https:// and unixs:// client URLs, applied as the gRPC side applies it.

The same certificate and key (the flags' or auto-TLS's), client certificates asked for and verified
against --trusted-ca-file when etcd would, --cipher-suites for TLS 1.2, changed files taken at the
next connection (as pyetcd/tlscredentials.py does for gRPC), then etcd's checks after the handshake
(CRL, allowed CN or hostname; pyetcd/certchecks.py). ALPN offers only HTTP/1.1: the front hands this
side the clients that can speak it (see relay_process.tls_is_grpc).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, cast

from cryptography import x509

from pyetcd.certchecks import CertificateCheck, go_quote, log_rejection
from pyetcd.relayed_peer import go_address
from pyetcd.tlsconfig import TLSInfo, files_stamp, grpc_cipher_list

log = logging.getLogger("pyetcd.embed")

ProtocolFactory = Callable[[], asyncio.BaseProtocol]
HANDSHAKE_TIMEOUT_S = 10.0
"""Go's net/http TLS handshake allowance is the connection's read timeout; etcd's listener waits long."""
ERR_NO_CERTIFICATE = "tls: client didn't provide a certificate"
"""Go's words for a handshake without the client certificate it must show (etcd logs them)."""


def server_context(info: TLSInfo, cipher_suites: Sequence[str] = ()) -> ssl.SSLContext:
    """A TLS server context as etcd's TLSInfo.ServerConfig, for HTTP/1.1."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # etcd's transport.TLSInfo minimum
    context.load_cert_chain(info.cert_file, info.key_file)
    if info.requires_client_certificate:
        context.verify_mode = ssl.CERT_REQUIRED
        if info.trusted_ca_file:
            context.load_verify_locations(info.trusted_ca_file)
        else:
            context.load_default_certs(ssl.Purpose.CLIENT_AUTH)  # Go verifies against the system roots
    if cipher_suites:
        context.set_ciphers(grpc_cipher_list(cipher_suites))  # the same OpenSSL names BoringSSL takes
    context.set_alpn_protocols(["http/1.1"])
    return context


class HttpTls:
    """The HTTP side's TLS on client URLs: a server context (remade when a file changed) and the
    post-handshake checks."""

    def __init__(self, info: TLSInfo, cipher_suites: Sequence[str] = ()) -> None:
        self.info = info
        self._cipher_suites = tuple(cipher_suites)
        self._check = CertificateCheck(info)
        self._stamp = self._files_stamp()
        self._context = server_context(info, self._cipher_suites)

    def _files_stamp(self) -> tuple[tuple[float, int], ...]:
        return files_stamp([self.info.cert_file, self.info.key_file, self.info.trusted_ca_file])

    def context(self) -> ssl.SSLContext:
        """The context for the next connection: remade when a file changed, kept when the new ones fail."""
        stamp = self._files_stamp()
        if stamp != self._stamp:
            try:
                self._context = server_context(self.info, self._cipher_suites)
            except (OSError, ValueError, ssl.SSLError) as err:
                log.warning("failed to reload certificate files (%s); keeping the ones in use", err)
            else:
                self._stamp = stamp
        return self._context

    def checked(self, app_protocol: ProtocolFactory) -> ProtocolFactory:
        """`app_protocol` for connections whose certificate passes etcd's checks; others are dropped."""
        if not self._check.needed:
            return app_protocol
        return lambda: CheckedConnection(self._check, app_protocol)


    async def serve(self, app_protocol: ProtocolFactory, conn: socket.socket) -> asyncio.BaseTransport | None:
        """Make the TLS handshake on an accepted connection and hand it to `app_protocol` once etcd's
        checks pass; None (the connection closed, a missing certificate logged as etcd logs it) if refused."""
        conn.setblocking(False)
        try:
            client = go_address(conn.getpeername()) or "@"
        except OSError:
            conn.close()  # gone already
            return None
        try:
            transport, _ = await asyncio.get_running_loop().connect_accepted_socket(
                self.checked(app_protocol), conn, ssl=self.context(), ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S)
        except (OSError, TimeoutError, ConnectionError) as err:
            conn.close()  # a failed handshake: the client is refused, or gone
            if getattr(err, "reason", None) == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
                log.info('rejected connection from %s (error %s, ServerName "")', go_quote(client),
                         go_quote(ERR_NO_CERTIFICATE))
            return None
        return transport


class CheckedConnection(asyncio.Protocol):
    """Runs etcd's post-handshake certificate checks (made once the TLS handshake completed, before
    any request is read), then gives the connection to the HTTP side's protocol."""

    def __init__(self, check: CertificateCheck, app_protocol: ProtocolFactory) -> None:
        self._check = check
        self._app_protocol = app_protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if der:
            certificate = x509.load_der_x509_certificate(der)
            problem = self._check.certificate_problem(certificate)
            if problem is not None:
                client = go_address(transport.get_extra_info("peername")) or "@"
                log_rejection(client, "", certificate, problem)
                cast(asyncio.Transport, transport).abort()  # uvloop's transports are not asyncio's classes
                return
        protocol = self._app_protocol()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)


class TlsListener:
    """Serves the HTTP side over TLS on bound listening sockets, each connection through `HttpTls.serve`
    (a context remade when a file changed, etcd's checks): etcd's TLS listener, for --listen-metrics-urls."""

    def __init__(self, sockets: Sequence[socket.socket], tls: HttpTls, app_protocol: ProtocolFactory) -> None:
        self._sockets = list(sockets)
        self._tls = tls
        self._app_protocol = app_protocol
        self._tasks: set[asyncio.Task[None]] = set()
        self._transports: set[asyncio.BaseTransport] = set()

    def start(self) -> None:
        for sock in self._sockets:
            self._spawn(self._accept(sock))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(sock)
            except (ConnectionError, BlockingIOError, InterruptedError):
                continue  # a client gone before it was accepted
            self._spawn(self._serve(conn))

    async def _serve(self, conn: socket.socket) -> None:
        transport = await self._tls.serve(self._app_protocol, conn)
        if transport is not None:
            self._transports = {kept for kept in self._transports if not kept.is_closing()}
            self._transports.add(transport)

    async def close(self) -> None:
        """Stop accepting, and close the open connections."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for sock in self._sockets:
            sock.close()
        for transport in self._transports:
            transport.close()
        self._transports.clear()
