"""The Auth service's work: Authenticate, and the user and role calls, each proposed through the log.

As in etcd 3.4 every Auth call, reads included, is a Raft entry: the applier checks the caller
(root for management; oneself for UserGet; one's own role for RoleGet) at the auth revision
the entry carries, and applies the change on every member. Passwords are hashed here, off the
event loop, before proposing, so the log carries only bcrypt hashes.
"""

from __future__ import annotations

import asyncio
import logging

from google.protobuf.message import Message

from etcdpb.etcdserverpb import raft_internal_pb2, rpc_pb2
from pyetcd import errors
from pyetcd.auth.checks import check_watch
from pyetcd.auth.passwords import hash_password, password_matches
from pyetcd.server_core import ServerCore

log = logging.getLogger("pyetcd.auth")

AUTH_REQUEST_FIELDS: dict[str, str] = {
    "AuthEnableRequest": "auth_enable",
    "AuthDisableRequest": "auth_disable",
    "AuthUserAddRequest": "auth_user_add",
    "AuthUserDeleteRequest": "auth_user_delete",
    "AuthUserGetRequest": "auth_user_get",
    "AuthUserChangePasswordRequest": "auth_user_change_password",
    "AuthUserGrantRoleRequest": "auth_user_grant_role",
    "AuthUserRevokeRoleRequest": "auth_user_revoke_role",
    "AuthUserListRequest": "auth_user_list",
    "AuthRoleListRequest": "auth_role_list",
    "AuthRoleAddRequest": "auth_role_add",
    "AuthRoleDeleteRequest": "auth_role_delete",
    "AuthRoleGetRequest": "auth_role_get",
    "AuthRoleGrantPermissionRequest": "auth_role_grant_permission",
    "AuthRoleRevokePermissionRequest": "auth_role_revoke_permission",
}
"""Each Auth request message, by the InternalRaftRequest field that carries it."""


class ServerAuth(ServerCore):
    """Authenticate and every user, role and enable/disable call."""

    async def auth_call(self, req: Message) -> Message:
        """Propose one Auth request (not Authenticate) and return its answer.

        The answer's header is filled where every unary answer's is: in the API's method handlers.
        """
        request_type = type(req).__name__
        name = AUTH_REQUEST_FIELDS[request_type]
        answer: type[Message] = getattr(rpc_pb2, request_type.removesuffix("Request") + "Response")
        request = raft_internal_pb2.InternalRaftRequest()
        getattr(request, name).CopyFrom(req)
        carried = getattr(request, name)
        if isinstance(carried, (rpc_pb2.AuthUserAddRequest, rpc_pb2.AuthUserChangePasswordRequest)):
            no_password = isinstance(carried, rpc_pb2.AuthUserAddRequest) and carried.options.no_password
            # etcd 3.5 clients may send the hash themselves; otherwise hash the password here.
            if not no_password and (carried.password or not carried.hashedPassword):
                carried.hashedPassword = await self._hash(carried.password)
            carried.password = ""
        return await self._propose_and_wait(request, answer)

    async def _hash(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(None, hash_password, password, self.config.bcrypt_cost)

    async def authenticate(self, req: rpc_pb2.AuthenticateRequest) -> rpc_pb2.AuthenticateResponse:
        """etcd's Authenticate: check the password at some auth revision, then propose the token's
        creation; if the auth store moved on meanwhile (the password may have changed), do it again."""
        await self.linearizable_barrier()
        while True:
            check = self.auth.password_check(req.name)
            matches = await asyncio.get_running_loop().run_in_executor(
                None, password_matches, check.hashed, req.password)
            if not matches:
                log.info("invalid password for user %r", req.name)
                raise errors.ErrGRPCAuthFailed
            request = raft_internal_pb2.InternalRaftRequest()
            request.authenticate.name = req.name
            request.authenticate.simple_token = self.auth.tokens.gen_token_prefix()
            response = await self._propose_and_wait(request, rpc_pb2.AuthenticateResponse)
            if check.revision == self.auth.revision:
                return response
            log.info("auth revision changed while the password was checked; checking again")

    async def check_watch_permitted(self, key: bytes, range_end: bytes) -> None:
        """A watch is created only over keys the caller may read (checked once, on create, as etcd)."""
        check_watch(self.auth, await self.request_auth_info(), key, range_end)
