"""The Cluster service's MemberList as etcd's grpc-proxy answers it.

- no --advertise-client-url: the cluster's own member list;
- with it and --resolver-prefix: the proxies registered under the prefix (this one until any is seen);
- with it alone: just this proxy, so clients that sync endpoints keep talking to the proxy.
"""

from __future__ import annotations

import socket
from typing import Any

import grpc.aio

from etcdpb.etcdserverpb import rpc_pb2
from pyetcd.proxy.register import ProxyResolver
from pyetcd.proxy.upstream import Upstream, fail_call, forwarded_metadata, remaining_timeout

MEMBER_LIST = "/etcdserverpb.Cluster/MemberList"


class MemberListProxy:
    def __init__(self, upstream: Upstream, advertise_client_url: str = "",
                 resolver: ProxyResolver | None = None) -> None:
        self._upstream = upstream
        self._advertise_client_url = advertise_client_url
        self._resolver = resolver

    async def MemberList(self, request: rpc_pb2.MemberListRequest,
                         context: Any) -> rpc_pb2.MemberListResponse:
        if self._advertise_client_url:
            if self._resolver is not None and self._resolver.proxies:
                members = [rpc_pb2.Member(name=name, clientURLs=[addr])
                           for addr, name in sorted(self._resolver.proxies.items())]
                return rpc_pb2.MemberListResponse(members=members)
            return rpc_pb2.MemberListResponse(members=[
                rpc_pb2.Member(name=socket.gethostname(), clientURLs=[self._advertise_client_url])])
        try:
            response: rpc_pb2.MemberListResponse = await self._upstream.unary(
                MEMBER_LIST, request, rpc_pb2.MemberListResponse.FromString,
                metadata=forwarded_metadata(context), timeout=remaining_timeout(context), idempotent=True)
        except grpc.aio.AioRpcError as err:
            await fail_call(context, err)
        return response
