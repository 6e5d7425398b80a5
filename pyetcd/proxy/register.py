"""Proxy discovery through the cluster, in the format of etcd's gRPC naming resolver.

A proxy started with --resolver-prefix and --advertise-client-url keeps the key `<prefix>/<addr>`
alive under a lease of --resolver-ttl seconds; its value is the JSON update
`{"Op":0,"Addr":"<addr>","Metadata":"{\\"name\\":\\"<hostname>\\"}"}`. Every proxy follows the keys
under the prefix to answer MemberList with the proxies instead of the cluster's members.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket

import grpc.aio

from etcdpb.etcdserverpb import rpc_pb2
from etcdpb.mvccpb import kv_pb2
from pyetcd.proxy.namespace import prefix_end
from pyetcd.proxy.upstream import Upstream

log = logging.getLogger("pyetcd.grpcproxy")

LEASE_GRANT = "/etcdserverpb.Lease/LeaseGrant"
LEASE_REVOKE = "/etcdserverpb.Lease/LeaseRevoke"
LEASE_KEEP_ALIVE = "/etcdserverpb.Lease/LeaseKeepAlive"
PUT = "/etcdserverpb.KV/Put"
RANGE = "/etcdserverpb.KV/Range"
WATCH = "/etcdserverpb.Watch/Watch"

# gRPC naming's operations, as stored in the update's "Op".
OP_ADD = 0
OP_DELETE = 1
_RETRY_SECONDS = 1.0


def registration_value(addr: str, name: str) -> bytes:
    """The stored update announcing a proxy at `addr`."""
    metadata = json.dumps({"name": name}, separators=(",", ":"))
    return json.dumps({"Op": OP_ADD, "Addr": addr, "Metadata": metadata}, separators=(",", ":")).encode()


def parse_registration(value: bytes) -> tuple[int, str, str] | None:
    """(op, addr, name) from a stored update, or None when it is not one."""
    try:
        update = json.loads(value)
        metadata = update.get("Metadata") or {}
        if isinstance(metadata, str):
            metadata = json.loads(metadata) if metadata else {}
        name = metadata.get("name", "") if isinstance(metadata, dict) else ""
        return int(update.get("Op", OP_ADD)), str(update["Addr"]), str(name)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


class ProxyRegistration:
    """Keeps this proxy's registration key alive, re-registering after a lost lease."""

    def __init__(self, upstream: Upstream, prefix: str, addr: str, ttl: int) -> None:
        self._upstream = upstream
        self.key = f"{prefix}/{addr}".encode()
        self._value = registration_value(addr, socket.gethostname())
        self._ttl = ttl
        self.lease_id = 0
        self.registered = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                await self._register_and_keep_alive()
            except grpc.aio.AioRpcError as err:
                log.warning("failed to register %s (%s); retrying", self.key.decode(), err.details())
            self.registered.clear()
            await asyncio.sleep(_RETRY_SECONDS)

    async def _register_and_keep_alive(self) -> None:
        grant = await self._upstream.unary(LEASE_GRANT, rpc_pb2.LeaseGrantRequest(TTL=self._ttl),
                                           rpc_pb2.LeaseGrantResponse.FromString, idempotent=False)
        self.lease_id = grant.ID
        await self._upstream.unary(PUT, rpc_pb2.PutRequest(key=self.key, value=self._value, lease=grant.ID),
                                   rpc_pb2.PutResponse.FromString, idempotent=True)
        log.info("registered %s with %d-second lease", self.key.decode(), grant.TTL)
        self.registered.set()
        index, call = self._upstream.stream_stream(LEASE_KEEP_ALIVE,
                                                   rpc_pb2.LeaseKeepAliveResponse.FromString)
        try:
            while True:
                await call.write(rpc_pb2.LeaseKeepAliveRequest(ID=grant.ID))
                response = await call.read()
                if response is grpc.aio.EOF or response.TTL <= 0:
                    log.warning("registration lease expired; possible network partition or server restart")
                    return
                await asyncio.sleep(max(response.TTL / 3, 0.5))
        except grpc.aio.AioRpcError:
            self._upstream.report_failure(index)
            raise
        finally:
            call.cancel()

    async def stop(self) -> None:
        """Withdraw the registration (best effort) and stop keeping it alive."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.lease_id:
            with contextlib.suppress(grpc.aio.AioRpcError):
                await self._upstream.unary(LEASE_REVOKE, rpc_pb2.LeaseRevokeRequest(ID=self.lease_id),
                                           rpc_pb2.LeaseRevokeResponse.FromString, timeout=1.0,
                                           idempotent=True)


class ProxyResolver:
    """Follows the proxies registered under a prefix: their addresses and names."""

    def __init__(self, upstream: Upstream, prefix: str) -> None:
        self._upstream = upstream
        self._prefix = prefix.encode()
        self.proxies: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                await self._follow()
            except grpc.aio.AioRpcError as err:
                log.warning("failed to resolve %r (%s); retrying", self._prefix.decode(), err.details())
            await asyncio.sleep(_RETRY_SECONDS)

    async def _follow(self) -> None:
        end = prefix_end(self._prefix)
        listing = await self._upstream.unary(RANGE, rpc_pb2.RangeRequest(key=self._prefix, range_end=end),
                                             rpc_pb2.RangeResponse.FromString, idempotent=True)
        self.proxies = {}
        for kv in listing.kvs:
            self._apply(kv_pb2.Event.PUT, kv)
        index, call = self._upstream.stream_stream(WATCH, rpc_pb2.WatchResponse.FromString)
        try:
            await call.write(rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(
                key=self._prefix, range_end=end, start_revision=listing.header.revision + 1, prev_kv=True)))
            async for response in call:
                if response.canceled:
                    return
                for event in response.events:
                    self._apply(event.type, event.prev_kv if event.type == kv_pb2.Event.DELETE else event.kv,
                                event.kv.key)
        except grpc.aio.AioRpcError:
            self._upstream.report_failure(index)
            raise
        finally:
            call.cancel()

    def _apply(self, event_type: int, kv: kv_pb2.KeyValue, key: bytes = b"") -> None:
        update = parse_registration(kv.value) if kv.value else None
        if event_type == kv_pb2.Event.DELETE:
            addr = update[1] if update else (key or kv.key)[len(self._prefix) + 1:].decode(errors="replace")
            self.proxies.pop(addr, None)
            return
        if update is None:
            return
        op, addr, name = update
        if op == OP_DELETE:
            self.proxies.pop(addr, None)
        else:
            self.proxies[addr] = name

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
