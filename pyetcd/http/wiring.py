"""Puts the HTTP side on a member: /health, /version, /metrics, the JSON gateway and /debug/raft beside
gRPC on the client URLs, plain or TLS (through the front that shares the port), and /metrics and /health
on --listen-metrics-urls."""

from __future__ import annotations

import asyncio
import logging
import ssl
from urllib.parse import urlsplit

from pyetcd import SERVER_VERSION
from pyetcd.api.register import client_method_handlers
from pyetcd.errors import StartupError
from pyetcd.http.app import AccessRules, HttpSide, VersionSource, client_url_app, metrics_url_app
from pyetcd.http.front import ClientPortFront, bind_url
from pyetcd.http.gateway import JsonGateway
from pyetcd.http.health import HealthSources
from pyetcd.http.metrics import MemberView, member_metrics
from pyetcd.http.raftview import RaftViewRoutes
from pyetcd.http.tls import HttpTls, TlsListener
from pyetcd.server import EtcdServer
from pyetcd.tlsconfig import TLSInfo, is_secure_url

log = logging.getLogger("pyetcd.embed")


def health_sources(server: EtcdServer) -> HealthSources:
    return HealthSources(alarms=lambda: server.applier.alarms,
                         leader_id=lambda: server.node.status().leader_id,
                         quorum_read=server.linearizable_barrier)


def member_view(server: EtcdServer) -> MemberView:
    return MemberView(
        member_id=lambda: server.member_id, server_version=SERVER_VERSION,
        leader_id=lambda: server.node.status().leader_id, committed_index=lambda: server.node.status().commit,
        applied_index=lambda: server.store.consistent_index, pending_proposals=lambda: len(server._waiters),
        quota_backend_bytes=lambda: server.config.quota_backend_bytes, db_size=lambda: server.store.db_size(),
        db_size_in_use=lambda: server.store.db_size_in_use(), live_keys=lambda: server.store.live_key_count(),
        watchers=lambda: server.store.watcher_count(), counters=server.counters, mvcc=lambda: server.store.counters,
        auth_revision=lambda: server.auth.revision)


def metrics_tls(url: str, client_tls: TLSInfo, cipher_suites: tuple[str, ...]) -> HttpTls | None:
    """The TLS of a metrics URL: None for http://, the client TLS settings for https:// and unixs://,
    with --cipher-suites and the checks on client certificates (CRL, allowed CN or hostname), as etcd's
    serveMetrics listens with the client TLSInfo. Without --cert-file/--key-file (or --auto-tls) such a
    URL cannot start, as in etcd."""
    parts = urlsplit(url)
    if not is_secure_url(url):
        return None
    if client_tls.empty:
        raise StartupError(f"cannot listen on TLS for {parts.netloc}: KeyFile and CertFile are not presented")
    try:
        return HttpTls(client_tls, cipher_suites)
    except (OSError, ValueError, ssl.SSLError) as err:
        raise StartupError(f"client TLS: {err}") from None


class HttpWiring:
    """The HTTP side of one member; `start` before the server starts, `stop` after it stopped."""

    def __init__(self, server: EtcdServer) -> None:
        config = server.config
        metrics = member_metrics(member_view(server), extensive=config.metrics == "extensive")
        self.grpc_stats = metrics.grpc_stats
        """Counts the client API's calls for /metrics (the CLI hands it to the gRPC API)."""
        self.client_front: ClientPortFront | None = None
        """Owns the client URLs once started, and passes gRPC connections on to the gRPC API."""
        server.disk_observers = metrics.disk
        health = health_sources(server)
        self._server = server
        gateway = JsonGateway(client_method_handlers(server, stats=metrics.grpc_stats))
        rules = AccessRules(frozenset(config.host_whitelist), frozenset(config.cors),
                            refuse_named_gateway_clients=lambda: server.client_tls.client_cert_auth
                            and server.auth.enabled)
        raft_view = RaftViewRoutes(lambda: server.node, lambda: server.membership.members(), config.client_tls) \
            if config.enable_raft_view else None
        self._client_side = HttpSide(client_url_app(health, VersionSource(SERVER_VERSION, server.cluster_version),
                                                    metrics.registry, gateway, rules, raft_view))
        self._metrics_side = HttpSide(metrics_url_app(health, metrics.registry, raft_view))
        self._metrics_servers: list[asyncio.AbstractServer] = []
        self._metrics_tls_listeners: list[TlsListener] = []

    async def start(self) -> None:
        await self._client_side.start()
        await self._metrics_side.start()
        self.client_front = ClientPortFront(self._client_side.protocol)

    async def serve_metrics_urls(self) -> None:
        """Listen on --listen-metrics-urls (after the member serves clients, as etcd does); an https one
        with the client TLS settings, as etcd's serveMetrics does."""
        loop = asyncio.get_running_loop()
        for url in self._server.config.listen_metrics_urls:
            tls = metrics_tls(url, self._server.client_tls, self._server.config.cipher_suites)
            sockets = bind_url(url)
            if tls is None:
                for sock in sockets:
                    self._metrics_servers.append(await loop.create_server(self._metrics_side.protocol, sock=sock))
            else:
                listener = TlsListener(sockets, tls, self._metrics_side.protocol)
                listener.start()
                self._metrics_tls_listeners.append(listener)
            log.info("serving metrics/health on %s", url)

    async def stop(self) -> None:
        for server in self._metrics_servers:
            server.close()
        for listener in self._metrics_tls_listeners:
            await listener.close()
        await self._client_side.stop()
        await self._metrics_side.stop()
