"""The Auth service of a server whose authentication is disabled and has no users or roles.

Reads answer as etcd 3.4 does for an empty auth store (no users, no roles; enabling auth
needs a root user). Changes to users and roles are not supported and are refused with
"etcdserver: authentication is not enabled".
"""

from __future__ import annotations

from typing import Any

from etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from pyetcd import errors
from pyetcd.api.header import fill_header
from pyetcd.api.server_api import EtcdServerApi


class AuthServicer(rpc_pb2_grpc.AuthServicer):
    """etcdserverpb.Auth with authentication disabled."""

    def __init__(self, etcd: EtcdServerApi) -> None:
        self._etcd = etcd

    def _answer(self, response: Any) -> Any:
        fill_header(response.header, self._etcd)
        return response

    async def AuthEnable(self, request: Any, context: Any) -> Any:  # noqa: N802
        await errors.abort_with(context, errors.ErrGRPCRootUserNotExist)

    async def AuthDisable(self, request: Any, context: Any) -> Any:  # noqa: N802
        return self._answer(rpc_pb2.AuthDisableResponse())  # already disabled: nothing to do

    async def Authenticate(self, request: Any, context: Any) -> Any:  # noqa: N802
        await errors.abort_with(context, errors.ErrGRPCAuthNotEnabled)

    async def UserList(self, request: Any, context: Any) -> Any:  # noqa: N802
        return self._answer(rpc_pb2.AuthUserListResponse())

    async def RoleList(self, request: Any, context: Any) -> Any:  # noqa: N802
        return self._answer(rpc_pb2.AuthRoleListResponse())

    async def UserGet(self, request: Any, context: Any) -> Any:  # noqa: N802
        await errors.abort_with(context, errors.ErrGRPCUserNotFound)

    async def RoleGet(self, request: Any, context: Any) -> Any:  # noqa: N802
        await errors.abort_with(context, errors.ErrGRPCRoleNotFound)

    async def _not_enabled(self, request: Any, context: Any) -> Any:
        await errors.abort_with(context, errors.ErrGRPCAuthNotEnabled)

    UserAdd = _not_enabled
    UserDelete = _not_enabled
    UserChangePassword = _not_enabled
    UserGrantRole = _not_enabled
    UserRevokeRole = _not_enabled
    RoleAdd = _not_enabled
    RoleDelete = _not_enabled
    RoleGrantPermission = _not_enabled
    RoleRevokePermission = _not_enabled
