"""Puts every etcd v3 service on a grpc.aio server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from etcdpb.etcdserverpb import rpc_pb2_grpc
from pyetcd.api.auth import AuthServicer
from pyetcd.api.cluster import ClusterServicer
from pyetcd.api.kv import KVServicer
from pyetcd.api.lease import LeaseServicer
from pyetcd.api.maintenance import MaintenanceServicer
from pyetcd.api.server_api import EtcdServerApi
from pyetcd.api.watch import GRPC_OVERHEAD_BYTES, WatchServicer


def grpc_server_options(max_request_bytes: int) -> list[tuple[str, int]]:
    """etcd's client-facing gRPC limits: requests up to --max-request-bytes plus gRPC's
    overhead allowance, answers of any size."""
    return [
        ("grpc.max_receive_message_length", max_request_bytes + GRPC_OVERHEAD_BYTES),
        ("grpc.max_send_message_length", 2**31 - 1),
    ]


def add_services(server: Any, etcd: EtcdServerApi, *, watch_progress_interval: float | None = None) -> None:
    """Add KV, Watch, Lease, Cluster, Maintenance and Auth, each answering from `etcd`.

    `watch_progress_interval` overrides the config's watch progress-notify interval (seconds).
    """
    adders: list[tuple[Callable[[Any, Any], None], Any]] = [
        (rpc_pb2_grpc.add_KVServicer_to_server, KVServicer(etcd)),
        (rpc_pb2_grpc.add_WatchServicer_to_server,
         WatchServicer(etcd, progress_interval=watch_progress_interval)),
        (rpc_pb2_grpc.add_LeaseServicer_to_server, LeaseServicer(etcd)),
        (rpc_pb2_grpc.add_ClusterServicer_to_server, ClusterServicer(etcd)),
        (rpc_pb2_grpc.add_MaintenanceServicer_to_server, MaintenanceServicer(etcd)),
        (rpc_pb2_grpc.add_AuthServicer_to_server, AuthServicer(etcd)),
    ]
    for add, servicer in adders:
        add(servicer, server)
