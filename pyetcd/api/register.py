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
from pyetcd.api.watch import WatchServicer


def grpc_server_options(max_request_bytes: int) -> list[tuple[str, int]]:
    """etcd's client-facing gRPC limits: requests up to --max-request-bytes plus gRPC's
    overhead allowance (the handlers refuse larger ones), answers of any size."""
    return [
        ("grpc.max_receive_message_length", transport_receive_limit(max_request_bytes)),
        ("grpc.max_send_message_length", 2**31 - 1),
    ]


def add_services(server: Any, etcd: EtcdServerApi, *, watch_progress_interval: float | None = None) -> None:
    """Add KV, Watch, Lease, Cluster, Maintenance and Auth, each answering from `etcd`.

    `watch_progress_interval` overrides the config's watch progress-notify interval (seconds).
    Calls to any other method get grpc-go's UNIMPLEMENTED answer, so services added to the same
    server later must use registered method handlers (as generated `add_*_to_server` code does).
    """
    servicers: dict[str, Any] = {
        "KV": KVServicer(etcd),
        "Watch": WatchServicer(etcd, progress_interval=watch_progress_interval),
        "Lease": LeaseServicer(etcd),
        "Cluster": ClusterServicer(etcd),
        "Maintenance": MaintenanceServicer(etcd),
        "Auth": AuthServicer(etcd),
    }
    known: set[str] = set()
    for name, servicer in servicers.items():
        service = rpc_pb2.DESCRIPTOR.services_by_name[name]
        handlers = service_handlers(service, servicer, etcd)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
        server.add_registered_method_handlers(service.full_name, handlers)
        known.add(service.full_name)
    server.add_generic_rpc_handlers((UnknownMethodHandler(known),))
