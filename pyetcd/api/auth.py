"""The Auth service: every call goes to the server, which proposes it through the log."""

from __future__ import annotations

from typing import Any

from etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from pyetcd.api.server_api import EtcdServerApi


class AuthServicer(rpc_pb2_grpc.AuthServicer):
    """etcdserverpb.Auth: enable/disable, Authenticate, users and roles."""

    def __init__(self, etcd: EtcdServerApi) -> None:
        self._etcd = etcd

    async def Authenticate(self, request: rpc_pb2.AuthenticateRequest,  # noqa: N802
                           context: Any) -> rpc_pb2.AuthenticateResponse:
        return await self._etcd.authenticate(request)

    async def _forward(self, request: Any, context: Any) -> Any:
        return await self._etcd.auth_call(request)

    AuthEnable = _forward
    AuthDisable = _forward
    UserAdd = _forward
    UserGet = _forward
    UserList = _forward
    UserDelete = _forward
    UserChangePassword = _forward
    UserGrantRole = _forward
    UserRevokeRole = _forward
    RoleAdd = _forward
    RoleGet = _forward
    RoleList = _forward
    RoleDelete = _forward
    RoleGrantPermission = _forward
    RoleRevokePermission = _forward
