"""Puts every etcd v3 service on a grpc.aio server, behind etcd's checks (see handlers.py)."""

from __future__ import annotations

from typing import Any

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
