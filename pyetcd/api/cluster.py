"""The Cluster service: membership changes and the member list."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from pyetcd import errors
from pyetcd.api.header import fill_header_without_revision
from pyetcd.api.server_api import EtcdServerApi


def _has_host_and_port(netloc: str) -> bool:
    if netloc.startswith("["):  # [IPv6]:port
        return "]:" in netloc
    return netloc.count(":") == 1


def valid_peer_urls(urls: Sequence[str]) -> bool:
    """Whether etcd's types.NewURLs accepts these URLs: at least one; http(s) with host:port
    and no path, or unix(s)."""
    if not urls:
        return False
    for raw in urls:
        try:
            parts = urlsplit(raw.strip())
        except ValueError:
            return False
        if parts.scheme in ("http", "https"):
            if not _has_host_and_port(parts.netloc) or parts.path:
                return False
        elif parts.scheme not in ("unix", "unixs"):
            return False
    return True


class ClusterServicer(rpc_pb2_grpc.ClusterServicer):
    """etcdserverpb.Cluster."""

    def __init__(self, etcd: EtcdServerApi) -> None:
        self._etcd = etcd

    async def MemberAdd(self, request: rpc_pb2.MemberAddRequest,  # noqa: N802
                        context: Any) -> rpc_pb2.MemberAddResponse:
        try:
            if not valid_peer_urls(request.peerURLs):
                raise errors.ErrGRPCMemberBadURLs
            response = await self._etcd.member_add(request)
        except Exception as err:
            await errors.abort_with(context, err)
        fill_header_without_revision(response.header, self._etcd)
        return response

    async def MemberRemove(self, request: rpc_pb2.MemberRemoveRequest,  # noqa: N802
                           context: Any) -> rpc_pb2.MemberRemoveResponse:
        try:
            response = await self._etcd.member_remove(request)
        except Exception as err:
            await errors.abort_with(context, err)
        fill_header_without_revision(response.header, self._etcd)
        return response

    async def MemberUpdate(self, request: rpc_pb2.MemberUpdateRequest,  # noqa: N802
                           context: Any) -> rpc_pb2.MemberUpdateResponse:
        try:
            response = await self._etcd.member_update(request)
        except Exception as err:
            await errors.abort_with(context, err)
        fill_header_without_revision(response.header, self._etcd)
        return response

    async def MemberList(self, request: rpc_pb2.MemberListRequest,  # noqa: N802
                         context: Any) -> rpc_pb2.MemberListResponse:
        try:
            response = await self._etcd.member_list(request)
        except Exception as err:
            await errors.abort_with(context, err)
        fill_header_without_revision(response.header, self._etcd)
        return response

    async def MemberPromote(self, request: rpc_pb2.MemberPromoteRequest,  # noqa: N802
                            context: Any) -> rpc_pb2.MemberPromoteResponse:
        try:
            response = await self._etcd.member_promote(request)
        except Exception as err:
            await errors.abort_with(context, err)
        fill_header_without_revision(response.header, self._etcd)
        return response
