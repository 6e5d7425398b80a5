"""Puts every etcd v3 service on a grpc.aio server, behind etcd's checks (see handlers.py), and serves them on a
member's client URLs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import grpc

from etcdpb.etcdserverpb import rpc_pb2
from pyetcd.api.auth import AuthServicer
from pyetcd.api.cluster import ClusterServicer
from pyetcd.api.handlers import UnknownMethodHandler, service_handlers, transport_receive_limit
from pyetcd.api.kv import KVServicer
from pyetcd.api.lease import LeaseServicer
from pyetcd.api.maintenance import MaintenanceServicer
from pyetcd.api.server_api import EtcdServerApi
from pyetcd.api.stats import GrpcStats
from pyetcd.api.watch import WatchServicer
from pyetcd.certchecks import server_interceptors
from pyetcd.config import ServerConfig
from pyetcd.errors import StartupError
from pyetcd.tlsconfig import TLSInfo, is_secure_url, listen_address
from pyetcd.tlscredentials import server_credentials
from pyetcd.urls import host_port


def grpc_server_options(max_request_bytes: int) -> list[tuple[str, int]]:
    """etcd's client-facing gRPC limits: requests up to --max-request-bytes plus gRPC's
    overhead allowance (the handlers refuse larger ones), answers of any size."""
    return [
        ("grpc.max_receive_message_length", transport_receive_limit(max_request_bytes)),
        ("grpc.max_send_message_length", 2**31 - 1),
    ]


def client_method_handlers(etcd: EtcdServerApi, *, watch_progress_interval: float | None = None,
                           stats: GrpcStats | None = None) -> dict[str, dict[str, Any]]:
    """Service full name -> method name -> handler, for KV, Watch, Lease, Cluster, Maintenance and
    Auth, each answering from `etcd` (the JSON gateway calls the same handlers)."""
    servicers: dict[str, Any] = {
        "KV": KVServicer(etcd),
        "Watch": WatchServicer(etcd, progress_interval=watch_progress_interval),
        "Lease": LeaseServicer(etcd),
        "Cluster": ClusterServicer(etcd),
        "Maintenance": MaintenanceServicer(etcd),
        "Auth": AuthServicer(etcd),
    }
    services = {}
    for name, servicer in servicers.items():
        service = rpc_pb2.DESCRIPTOR.services_by_name[name]
        services[service.full_name] = service_handlers(service, servicer, etcd, stats)
    return services


def add_services(server: Any, etcd: EtcdServerApi, *, watch_progress_interval: float | None = None,
                 stats: GrpcStats | None = None) -> None:
    """Add KV, Watch, Lease, Cluster, Maintenance and Auth, each answering from `etcd`.

    `watch_progress_interval` overrides the config's watch progress-notify interval (seconds);
    `stats`, when given, counts every call for /metrics.
    Calls to any other method get grpc-go's UNIMPLEMENTED answer, so services added to the same
    server later must use registered method handlers (as generated `add_*_to_server` code does).
    """
    services = client_method_handlers(etcd, watch_progress_interval=watch_progress_interval, stats=stats)
    for full_name, handlers in services.items():
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(full_name, handlers),))
        server.add_registered_method_handlers(full_name, handlers)
    server.add_generic_rpc_handlers((UnknownMethodHandler(set(services)),))


class ClientFront(Protocol):
    """What owns the client URLs when gRPC shares them with HTTP (pyetcd/http/front.py)."""

    grpc_address: str

    def bind(self, urls: tuple[str, ...], tls: TLSInfo, cipher_suites: tuple[str, ...]) -> None: ...
    def listen_grpc(self, server: grpc.aio.Server,
                    tls_credentials: Callable[[], grpc.ServerCredentials] | None = None) -> None: ...
    def start(self) -> None: ...
    async def stop(self) -> None: ...


class ServedMember(EtcdServerApi, Protocol):
    """The member the client API serves: the servicers' server, and the TLS its client URLs use."""

    @property
    def client_tls(self) -> TLSInfo: ...


class GrpcClientApi:
    """The etcd v3 gRPC API on the member's --listen-client-urls, started once the member is ready.

    With a `front` (the HTTP side's), every client URL is the front's and gRPC connections reach this
    server through it (TLS ones still encrypted, on a TLS listener); without one, grpc-core binds every
    client URL itself. `stats` counts calls.
    """

    def __init__(self, config: ServerConfig, *, front: ClientFront | None = None,
                 stats: GrpcStats | None = None) -> None:
        self.config = config
        self.server: grpc.aio.Server | None = None
        self._stats = stats
        self._offered_front = front
        self._front: ClientFront | None = None

    def options(self) -> list[tuple[str, int]]:
        config = self.config
        return [*grpc_server_options(config.max_request_bytes),
                ("grpc.max_concurrent_streams", 2**31 - 1),
                ("grpc.http2.min_ping_interval_without_data_ms", int(config.grpc_keepalive_min_time_s * 1000)),
                ("grpc.keepalive_time_ms", int(config.grpc_keepalive_interval_s * 1000)),
                ("grpc.keepalive_timeout_ms", int(config.grpc_keepalive_timeout_s * 1000)),
                ("grpc.so_reuseport", 0)]

    async def start(self, etcd: ServedMember) -> None:
        tls = etcd.client_tls  # the flags' certificates, or those auto-TLS made when the member started
        server = grpc.aio.server(interceptors=server_interceptors(tls) or None, options=self.options())
        add_services(server, etcd, stats=self._stats)
        # With a front, every client URL is the front's, which shares it with the HTTP side: gRPC
        # connections reach grpc-core's private addresses, a TLS one for https:// and unixs:// URLs.
        front = self._offered_front
        fronted = list(self.config.listen_client_urls) if front is not None else []
        if front is not None and fronted:
            self._front = front  # stopped with the API, whether or not it got to start
            front.bind(tuple(fronted), tls, self.config.cipher_suites)
            front.listen_grpc(server, lambda: server_credentials(tls))
        for url in self.config.listen_client_urls:
            if url in fronted:
                continue
            address = listen_address(url)
            try:
                if is_secure_url(url) and not tls.empty:
                    # One credentials object per port: gRPC's reloadable credentials cannot be shared.
                    port = server.add_secure_port(address, server_credentials(tls))
                else:
                    port = server.add_insecure_port(address)
            except RuntimeError:
                port = 0
            if port == 0:
                network = "unix" if address.startswith("unix:") else "tcp"
                raise StartupError(f"listen {network} {host_port(url)}: bind: address already in use")
        await server.start()
        self.server = server
        if front is not None and fronted:
            front.start()

    async def stop(self) -> None:
        if self._front is not None:
            await self._front.stop()
        if self.server is not None:
            await self.server.stop(grace=0.5)
