"""The HTTP/1.1 routes of a client URL (and of --listen-metrics-urls), as an aiohttp application.

Answers are shaped as Go's net/http writes them in etcd 3.4: `http.Error` bodies end in a
newline and are text/plain; unknown paths get `404 page not found`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest

from pyetcd.http.gateway import JsonGateway
from pyetcd.http.health import HealthCounts, HealthSources, check_health
from pyetcd.http.raftview import RaftViewRoutes

log = logging.getLogger("pyetcd.embed")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

GO_TEXT = "text/plain; charset=utf-8"
SHUTDOWN_TIMEOUT_S = 1.0


def go_error(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    """What Go's http.Error sends."""
    response = web.Response(status=status, text=text + "\n", headers=headers)
    response.headers["Content-Type"] = GO_TEXT
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def method_not_allowed(allowed: str) -> web.Response:
    return go_error(405, "Method Not Allowed", {"Allow": allowed})


@dataclass(frozen=True, slots=True)
class VersionSource:
    server_version: str
    cluster_version: Callable[[], str | None]


def health_handler(sources: HealthSources) -> Callable[[web.Request], asyncio.Future[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        if request.method != "GET":
            return method_not_allowed("GET")
        excluded = {value for value in request.query.getall("exclude", []) if value}
        if await check_health(sources, excluded):
            response = web.Response(status=200, text='{"health":"true"}')
            response.headers["Content-Type"] = GO_TEXT
            return response
        return go_error(503, '{"health":"false"}')

    return handle  # type: ignore[return-value]


def version_handler(source: VersionSource) -> Callable[[web.Request], asyncio.Future[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        if request.method != "GET":
            return method_not_allowed("GET")
        body = json.dumps({"etcdserver": source.server_version,
                           "etcdcluster": source.cluster_version() or "not_decided"}, separators=(",", ":"))
        response = web.Response(status=200, text=body)
        response.headers["Content-Type"] = "application/json"
        return response

    return handle  # type: ignore[return-value]


def metrics_handler(registry: CollectorRegistry,
                    health: HealthCounts) -> Callable[[web.Request], asyncio.Future[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.Response(status=200, body=generate_latest(registry) + health.exposition())
        response.headers["Content-Type"] = CONTENT_TYPE_PLAIN_0_0_4  # what etcd 3.4 and Prometheus 2 speak
        return response

    return handle  # type: ignore[return-value]


async def not_found(request: web.Request) -> web.StreamResponse:
    return go_error(404, "404 page not found")


def cve_2018_5702_text(host: str) -> str:
    """etcd's answer to a plain-HTTP request whose Host is not in --host-whitelist."""
    return ("\netcd received your request, but the Host header was unrecognized.\n\n"
            "To fix this, choose one of the following options:\n"
            "- Enable TLS, then any HTTPS request will be allowed.\n"
            "- Add the hostname you want to use to the whitelist in settings.\n"
            f"  - e.g. etcd --host-whitelist {json.dumps(host)}\n\n"
            'This requirement has been added to help prevent "DNS Rebinding" attacks (CVE-2018-5702).\n')


def request_hostname(request: web.Request) -> str:
    """Go's httputil.GetHostname: the Host header without its port."""
    host = request.headers.get("Host", "")
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _never() -> bool:
    return False


ERR_GATEWAY_COMMON_NAME = ("CommonName of client sending a request against gateway will be ignored "
                           "and not used as expected")


@dataclass(frozen=True, slots=True)
class AccessRules:
    """--host-whitelist and --cors, as etcd's AccessController applies them to client URLs."""

    host_whitelist: frozenset[str] = frozenset({"*"})
    cors: frozenset[str] = frozenset({"*"})
    refuse_named_gateway_clients: Callable[[], bool] = _never
    """Whether a gateway request over TLS whose client certificate has a Common Name is refused: etcd
    does so with --client-cert-auth while auth is enabled, as the gateway would not run it as that user."""

    def host_allowed(self, host: str) -> bool:
        return not self.host_whitelist or "*" in self.host_whitelist or host in self.host_whitelist


def client_common_name(request: web.Request) -> str:
    """The Common Name of the verified client certificate of a TLS request ("" without one)."""
    transport = request.transport
    certificate = transport.get_extra_info("peercert") if transport is not None else None
    for rdn in (certificate or {}).get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return str(value)
    return ""


def access_controller(rules: AccessRules) -> Any:
    """etcd's accessController: the DNS-rebinding guard, CORS headers, and OPTIONS answered at once."""

    @web.middleware
    async def control(request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request_hostname(request)
        if not request.secure and not rules.host_allowed(host):  # as etcd, a TLS request is not checked
            log.warning('rejecting HTTP request from "%s" to prevent DNS rebinding attacks', host)
            return go_error(421, cve_2018_5702_text(host))
        if request.secure and request.path.startswith(("/v3/", "/v3beta/")) and \
                rules.refuse_named_gateway_clients() and client_common_name(request):
            return go_error(400, ERR_GATEWAY_COMMON_NAME)
        origin = "*" if not rules.cors or "*" in rules.cors else request.headers.get("Origin", "")
        cors = {"Access-Control-Allow-Methods": "POST, GET, OPTIONS, PUT, DELETE",
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Headers": "accept, content-type, authorization"} \
            if origin == "*" or origin in rules.cors else {}
        if request.method == "OPTIONS":
            return web.Response(status=200, headers=cors)
        response = await handler(request)
        response.headers.update(cors)
        return response

    return control


async def _drop_server_header(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.popall("Server", None)


class HttpSide:
    """One aiohttp application; `protocol` makes a connection handler for an accepted socket."""

    def __init__(self, app: web.Application) -> None:
        app.on_response_prepare.append(_drop_server_header)
        # A client that goes away cancels its handler (a watch would otherwise hold the member's
        # shutdown), and shutting down waits at most a moment for requests in flight.
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, handler_cancellation=True,
                                     shutdown_timeout=SHUTDOWN_TIMEOUT_S)

    async def start(self) -> None:
        await self._runner.setup()

    def protocol(self) -> asyncio.BaseProtocol:
        server = self._runner.server
        assert server is not None, "start() first"
        return server()

    async def stop(self) -> None:
        await self._runner.cleanup()


def client_url_app(health: HealthSources, version: VersionSource, registry: CollectorRegistry,
                   gateway: JsonGateway, rules: AccessRules,
                   raft_view: RaftViewRoutes | None = None) -> web.Application:
    """The routes etcd serves beside gRPC on every client URL (and pyetcd's /debug/raft, unless turned off)."""
    app = web.Application(middlewares=[access_controller(rules)])
    gateway.add_routes(app)
    if raft_view is not None:
        raft_view.add_routes(app)
    app.router.add_route("*", "/health", health_handler(health))
    app.router.add_route("*", "/version", version_handler(version))
    app.router.add_route("*", "/metrics", metrics_handler(registry, health.counts))
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app


def metrics_url_app(health: HealthSources, registry: CollectorRegistry,
                    raft_view: RaftViewRoutes | None = None) -> web.Application:
    """What --listen-metrics-urls serve: /metrics and /health (etcd's HandleMetricsHealth), and /debug/raft."""
    app = web.Application()
    if raft_view is not None:
        raft_view.add_routes(app)
    app.router.add_route("*", "/health", health_handler(health))
    app.router.add_route("*", "/metrics", metrics_handler(registry, health.counts))
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app
