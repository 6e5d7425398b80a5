"""The Maintenance service: status, alarms, hashes, defragmentation, snapshots, leader moves."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

from etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from pyetcd.api.server_api import EtcdServerApi
from pyetcd.limits import SNAPSHOT_CHUNK_BYTES


def snapshot_responses(data: bytes) -> list[rpc_pb2.SnapshotResponse]:
    """The snapshot stream etcd sends: 32 KiB blobs counting down `remaining_bytes`, then one
    last blob holding the SHA-256 of everything before it (clients check it on restore)."""
    responses = []
    total = len(data)
    for offset in range(0, total, SNAPSHOT_CHUNK_BYTES):
        blob = data[offset:offset + SNAPSHOT_CHUNK_BYTES]
        responses.append(rpc_pb2.SnapshotResponse(remaining_bytes=total - offset - len(blob), blob=blob))
    responses.append(rpc_pb2.SnapshotResponse(remaining_bytes=0, blob=hashlib.sha256(data).digest()))
    return responses


class MaintenanceServicer(rpc_pb2_grpc.MaintenanceServicer):
    """etcdserverpb.Maintenance."""

    def __init__(self, etcd: EtcdServerApi) -> None:
        self._etcd = etcd

    async def Alarm(self, request: rpc_pb2.AlarmRequest, context: Any) -> rpc_pb2.AlarmResponse:  # noqa: N802
        return await self._etcd.alarm(request)

    async def Status(self, request: rpc_pb2.StatusRequest, context: Any) -> rpc_pb2.StatusResponse:  # noqa: N802
        return await self._etcd.status()

    async def Defragment(self, request: rpc_pb2.DefragmentRequest,  # noqa: N802
                         context: Any) -> rpc_pb2.DefragmentResponse:
        return await self._etcd.defragment()

    async def Hash(self, request: rpc_pb2.HashRequest, context: Any) -> rpc_pb2.HashResponse:  # noqa: N802
        return await self._etcd.hash()

    async def HashKV(self, request: rpc_pb2.HashKVRequest, context: Any) -> rpc_pb2.HashKVResponse:  # noqa: N802
        return await self._etcd.hash_kv(request)

    async def MoveLeader(self, request: rpc_pb2.MoveLeaderRequest,  # noqa: N802
                         context: Any) -> rpc_pb2.MoveLeaderResponse:
        return await self._etcd.move_leader(request)

    async def Snapshot(self, request: rpc_pb2.SnapshotRequest,  # noqa: N802
                       context: Any) -> AsyncIterator[rpc_pb2.SnapshotResponse]:
        # The server's chunks are gathered first: etcd's stream states how many bytes
        # remain in every blob, and the store's snapshot is one bytes value anyway.
        data = b"".join([chunk async for chunk in self._etcd.snapshot_chunks()])
        for response in snapshot_responses(data):
            yield response
