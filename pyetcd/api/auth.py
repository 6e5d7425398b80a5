"""The Auth service of a server whose authentication is disabled and has no users or roles.

Every call answers as etcd 3.4 does for an empty auth store: there are no users or roles to
get, change or delete, and enabling auth needs a root user. Adding a user or role, which
etcd would do, is not supported and is refused with "etcdserver: authentication is not enabled".
"""

from __future__ import annotations

from typing import Any

from etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from pyetcd import errors
from pyetcd.api.server_api import EtcdServerApi


class AuthServicer(rpc_pb2_grpc.AuthServicer):
    """etcdserverpb.Auth with authentication disabled."""

    def __init__(self, etcd: EtcdServerApi) -> None:
        self._etcd = etcd

    async def AuthEnable(self, request: Any, context: Any) -> Any:  # noqa: N802
        raise errors.ErrGRPCRootUserNotExist

    async def AuthDisable(self, request: Any, context: Any) -> Any:  # noqa: N802
        return rpc_pb2.AuthDisableResponse()  # already disabled: nothing to do

    async def Authenticate(self, request: Any, context: Any) -> Any:  # noqa: N802
        raise errors.ErrGRPCAuthNotEnabled

    async def UserList(self, request: Any, context: Any) -> Any:  # noqa: N802
        return rpc_pb2.AuthUserListResponse()

    async def RoleList(self, request: Any, context: Any) -> Any:  # noqa: N802
        return rpc_pb2.AuthRoleListResponse()

    async def UserGet(self, request: Any, context: Any) -> Any:  # noqa: N802
        raise errors.ErrGRPCUserNotFound

    async def RoleGet(self, request: Any, context: Any) -> Any:  # noqa: N802
        raise errors.ErrGRPCRoleNotFound

    async def UserAdd(self, request: Any, context: Any) -> Any:  # noqa: N802
        raise errors.ErrGRPCUserEmpty if not request.name else errors.ErrGRPCAuthNotEnabled

    async def RoleAdd(self, request: Any, context: Any) -> Any:  # noqa: N802
        raise errors.ErrGRPCRoleEmpty if not request.name else errors.ErrGRPCAuthNotEnabled

    async def _no_such_user(self, request: Any, context: Any) -> Any:
        raise errors.ErrGRPCUserNotFound

    async def _no_such_role(self, request: Any, context: Any) -> Any:
        raise errors.ErrGRPCRoleNotFound

    UserDelete = _no_such_user
    UserChangePassword = _no_such_user
    UserGrantRole = _no_such_user
    UserRevokeRole = _no_such_user
    RoleDelete = _no_such_role
    RoleGrantPermission = _no_such_role
    RoleRevokePermission = _no_such_role
