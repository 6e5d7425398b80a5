"""The Lease service: grants, revokes, time-to-live queries and the keep-alive stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from pyetcd import errors
from pyetcd.api.header import fill_header
from pyetcd.api.server_api import EtcdServerApi


class LeaseServicer(rpc_pb2_grpc.LeaseServicer):
    """etcdserverpb.Lease."""

    def __init__(self, etcd: EtcdServerApi) -> None:
        self._etcd = etcd

    async def LeaseGrant(self, request: rpc_pb2.LeaseGrantRequest,  # noqa: N802
                         context: Any) -> rpc_pb2.LeaseGrantResponse:
        return await self._etcd.lease_grant(request)

    async def LeaseRevoke(self, request: rpc_pb2.LeaseRevokeRequest,  # noqa: N802
                          context: Any) -> rpc_pb2.LeaseRevokeResponse:
        return await self._etcd.lease_revoke(request)

    async def LeaseTimeToLive(self, request: rpc_pb2.LeaseTimeToLiveRequest,  # noqa: N802
                              context: Any) -> rpc_pb2.LeaseTimeToLiveResponse:
        try:
            return await self._etcd.lease_time_to_live(request)
        except Exception as err:
            if errors.to_etcd_error(err) != errors.ErrGRPCLeaseNotFound:
                raise
            # etcd answers an unknown lease with TTL -1 rather than an error ("already expired").
            return rpc_pb2.LeaseTimeToLiveResponse(ID=request.ID, TTL=-1)

    async def LeaseLeases(self, request: rpc_pb2.LeaseLeasesRequest,  # noqa: N802
                          context: Any) -> rpc_pb2.LeaseLeasesResponse:
        return await self._etcd.lease_leases()

    async def LeaseKeepAlive(self, request_iterator: AsyncIterator[rpc_pb2.LeaseKeepAliveRequest],  # noqa: N802
                             context: Any) -> AsyncIterator[rpc_pb2.LeaseKeepAliveResponse]:
        """One answer per keep-alive, in order; TTL 0 tells the client its lease is gone."""
        async for request in request_iterator:
            # The header is taken before renewing, so its revision is never later than the
            # renewal: a client cannot see a keep-alive succeed after the lease's revoke.
            response = rpc_pb2.LeaseKeepAliveResponse(ID=request.ID)
            fill_header(response, self._etcd)
            try:
                response.TTL = await self._etcd.lease_renew(request.ID)
            except Exception as err:
                if errors.to_etcd_error(err) != errors.ErrGRPCLeaseNotFound:
                    raise
                response.TTL = 0
            yield response
