"""The JSON gateway: etcd 3.4's grpc-gateway routes (`POST /v3/kv/range`, ...) over the gRPC handlers.

Each request runs through the very method handlers the gRPC server uses (validation, learner
checks, etcd's errors), called in-process with a small servicer context. JSON follows
grpc-gateway v1's JSONPb as etcd configures it: proto field names, int64 as strings, bytes
as base64, zero values left out, unknown request fields ignored. A failed call answers
`{"error":…,"message":…,"code":…}` with grpc-gateway's HTTP status for the gRPC code; streams
(`/v3/watch`, `/v3/lease/keepalive`) answer one `{"result":…}` line per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Mapping
from typing import Any

import grpc
from aiohttp import web
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message

from etcdpb.etcdserverpb import rpc_pb2
from etcdpb.v3electionpb import v3election_pb2
from etcdpb.v3lockpb import v3lock_pb2

ROUTES: dict[str, tuple[str, str]] = {
    "/v3/kv/range": ("etcdserverpb.KV", "Range"),
    "/v3/kv/put": ("etcdserverpb.KV", "Put"),
    "/v3/kv/deleterange": ("etcdserverpb.KV", "DeleteRange"),
    "/v3/kv/txn": ("etcdserverpb.KV", "Txn"),
    "/v3/kv/compaction": ("etcdserverpb.KV", "Compact"),
    "/v3/watch": ("etcdserverpb.Watch", "Watch"),
    "/v3/lease/grant": ("etcdserverpb.Lease", "LeaseGrant"),
    "/v3/lease/revoke": ("etcdserverpb.Lease", "LeaseRevoke"),
    "/v3/kv/lease/revoke": ("etcdserverpb.Lease", "LeaseRevoke"),
    "/v3/lease/keepalive": ("etcdserverpb.Lease", "LeaseKeepAlive"),
    "/v3/lease/timetolive": ("etcdserverpb.Lease", "LeaseTimeToLive"),
    "/v3/kv/lease/timetolive": ("etcdserverpb.Lease", "LeaseTimeToLive"),
    "/v3/lease/leases": ("etcdserverpb.Lease", "LeaseLeases"),
    "/v3/kv/lease/leases": ("etcdserverpb.Lease", "LeaseLeases"),
    "/v3/cluster/member/add": ("etcdserverpb.Cluster", "MemberAdd"),
    "/v3/cluster/member/remove": ("etcdserverpb.Cluster", "MemberRemove"),
    "/v3/cluster/member/update": ("etcdserverpb.Cluster", "MemberUpdate"),
    "/v3/cluster/member/list": ("etcdserverpb.Cluster", "MemberList"),
    "/v3/cluster/member/promote": ("etcdserverpb.Cluster", "MemberPromote"),
    "/v3/maintenance/alarm": ("etcdserverpb.Maintenance", "Alarm"),
    "/v3/maintenance/status": ("etcdserverpb.Maintenance", "Status"),
    "/v3/maintenance/defragment": ("etcdserverpb.Maintenance", "Defragment"),
    # etcd 3.4 binds Hash and HashKV to the same path; the mux serves the first, Hash.
    "/v3/maintenance/hash": ("etcdserverpb.Maintenance", "Hash"),
    "/v3/maintenance/snapshot": ("etcdserverpb.Maintenance", "Snapshot"),
    "/v3/maintenance/transfer-leadership": ("etcdserverpb.Maintenance", "MoveLeader"),
    "/v3/auth/enable": ("etcdserverpb.Auth", "AuthEnable"),
    "/v3/auth/disable": ("etcdserverpb.Auth", "AuthDisable"),
    "/v3/auth/authenticate": ("etcdserverpb.Auth", "Authenticate"),
    "/v3/auth/user/add": ("etcdserverpb.Auth", "UserAdd"),
    "/v3/auth/user/get": ("etcdserverpb.Auth", "UserGet"),
    "/v3/auth/user/list": ("etcdserverpb.Auth", "UserList"),
    "/v3/auth/user/delete": ("etcdserverpb.Auth", "UserDelete"),
    "/v3/auth/user/changepw": ("etcdserverpb.Auth", "UserChangePassword"),
    "/v3/auth/user/grant": ("etcdserverpb.Auth", "UserGrantRole"),
    "/v3/auth/user/revoke": ("etcdserverpb.Auth", "UserRevokeRole"),
    "/v3/auth/role/add": ("etcdserverpb.Auth", "RoleAdd"),
    "/v3/auth/role/get": ("etcdserverpb.Auth", "RoleGet"),
    "/v3/auth/role/list": ("etcdserverpb.Auth", "RoleList"),
    "/v3/auth/role/delete": ("etcdserverpb.Auth", "RoleDelete"),
    "/v3/auth/role/grant": ("etcdserverpb.Auth", "RoleGrantPermission"),
    "/v3/auth/role/revoke": ("etcdserverpb.Auth", "RoleRevokePermission"),
    "/v3/lock/lock": ("v3lockpb.Lock", "Lock"),
    "/v3/lock/unlock": ("v3lockpb.Lock", "Unlock"),
    "/v3/election/campaign": ("v3electionpb.Election", "Campaign"),
    "/v3/election/proclaim": ("v3electionpb.Election", "Proclaim"),
    "/v3/election/leader": ("v3electionpb.Election", "Leader"),
    "/v3/election/observe": ("v3electionpb.Election", "Observe"),
    "/v3/election/resign": ("v3electionpb.Election", "Resign"),
}
"""etcd 3.4's google.api.http bindings (all POST), path -> (gRPC service, method)."""

HTTP_STATUS = {
    grpc.StatusCode.OK: 200, grpc.StatusCode.CANCELLED: 408, grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.DEADLINE_EXCEEDED: 504, grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409, grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401, grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 412, grpc.StatusCode.ABORTED: 409, grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501, grpc.StatusCode.INTERNAL: 500, grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}
"""grpc-gateway v1's HTTPStatusFromCode."""

HTTP_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
                408: "Request Timeout", 409: "Conflict", 412: "Precondition Failed", 429: "Too Many Requests",
                500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable",
                504: "Gateway Timeout"}

DESCRIPTORS = (rpc_pb2.DESCRIPTOR, v3lock_pb2.DESCRIPTOR, v3election_pb2.DESCRIPTOR)

MethodHandlers = Mapping[str, Mapping[str, Any]]
"""Service full name -> method name -> grpc.RpcMethodHandler, as the gRPC server has them."""


def grpc_peer(family: int, peername: Any) -> str:
    """A connection's remote end written as grpc-core's `context.peer()` writes it, by socket family."""
    if family == socket.AF_INET6:
        return f"ipv6:[{peername[0]}]:{peername[1]}"
    if family == socket.AF_INET:
        return f"ipv4:{peername[0]}:{peername[1]}"
    return f"unix:{peername or ''}"


class GatewayAbort(Exception):
    """What the servicer context raises on abort, carrying the call's status."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class GatewayContext:
    """The part of grpc.aio's ServicerContext that the handlers use, for a call made over HTTP.

    grpc-gateway forwards the `Authorization` header as `authorization` metadata, which etcd
    reads as the auth token.
    """

    def __init__(self, request: web.Request) -> None:
        self._metadata: tuple[tuple[str, str], ...] = tuple(
            ("authorization", value) for value in request.headers.getall("Authorization", []))
        self._code: grpc.StatusCode | None = None
        self._details = ""
        transport = request.transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        peername = transport.get_extra_info("peername") if transport is not None else None
        self._peer = grpc_peer(sock.family, peername) if sock is not None else ""

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = None) -> None:
        self._code, self._details = code, details
        raise GatewayAbort(code, details)

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def set_details(self, details: str) -> None:
        self._details = details

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def details(self) -> str:
        return self._details

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def peer(self) -> str:
        return self._peer

    def time_remaining(self) -> float | None:
        return None

    def cancelled(self) -> bool:
        return False


def message_json(message: Message) -> dict[str, Any]:
    """A message as grpc-gateway's JSONPb{OrigName: true} writes it."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def go_json_error(err: json.JSONDecodeError, text: str) -> str:
    """Go's encoding/json words for the usual malformed bodies."""
    if err.pos < len(text):
        return f"invalid character {text[err.pos]!r} looking for beginning of value".replace('"', "'")
    return "unexpected EOF"


def error_response(code: grpc.StatusCode, message: str) -> web.Response:
    body = dump({"error": message, "message": message, "code": code.value[0]})
    return web.Response(status=HTTP_STATUS.get(code, 500), body=body, content_type="application/json")


def stream_error_chunk(code: grpc.StatusCode, message: str) -> bytes:
    status = HTTP_STATUS.get(code, 500)
    chunk: dict[str, Any] = {"grpc_code": code.value[0], "http_code": status, "message": message,
                             "http_status": HTTP_REASONS.get(status, "")}
    return dump({"error": {k: v for k, v in chunk.items() if v}})


def parse_request(text: str, message_class: type[Message]) -> Message:
    """One JSON request body (or stream item), unknown fields ignored as grpc-gateway v1 does."""
    message = message_class()
    if text.strip():
        json_format.Parse(text, message, ignore_unknown_fields=True)
    return message


def split_json_values(text: str) -> list[str]:
    """A stream body's requests: consecutive JSON values, as Go's json.Decoder reads them."""
    decoder = json.JSONDecoder()
    values: list[str] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            return values
        _, end = decoder.raw_decode(text, position)
        values.append(text[position:end])
        position = end


class JsonGateway:
    """Serves the routes above from the gRPC method handlers `handlers`."""

    def __init__(self, handlers: MethodHandlers) -> None:
        self._handlers = handlers
        self._methods: dict[str, MethodDescriptor] = {}
        for descriptor in DESCRIPTORS:
            for service in descriptor.services_by_name.values():
                for method in service.methods:
                    self._methods[f"{service.full_name}/{method.name}"] = method

    def add_routes(self, app: web.Application) -> None:
        """Every route, also under /v3beta/ (etcd 3.4 rewrites that prefix to /v3/)."""
        for path in ROUTES:
            app.router.add_route("*", path, self.handle)
            app.router.add_route("*", "/v3beta/" + path[len("/v3/"):], self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.method != "POST":
            return web.Response(status=405, text="Method Not Allowed\n", content_type="text/plain")
        path = request.path
        if path.startswith("/v3beta/"):
            path = "/v3/" + path[len("/v3beta/"):]
        service, name = ROUTES[path]
        method = self._methods[f"{service}/{name}"]
        request_class = message_factory.GetMessageClass(method.input_type)
        text = await request.text()
        handler = self._handlers.get(service, {}).get(name)
        if handler is None:
            return error_response(grpc.StatusCode.UNIMPLEMENTED, f"unknown service {service}")
        context = GatewayContext(request)
        if method.client_streaming:
            try:
                items = [parse_request(item, request_class) for item in split_json_values(text)]
            except (json.JSONDecodeError, json_format.ParseError) as err:
                return error_response(grpc.StatusCode.INVALID_ARGUMENT, str(err))
            # etcd keeps a watch stream open after the client's requests end; a keep-alive stream ends.
            hold_open = service == "etcdserverpb.Watch"
            return await self._stream(request, handler.stream_stream(_requests(items, hold_open), context))
        try:
            json.loads(text or "{}")
        except json.JSONDecodeError as err:
            return error_response(grpc.StatusCode.INVALID_ARGUMENT, go_json_error(err, text))
        try:
            message = parse_request(text, request_class)
        except json_format.ParseError as err:
            return error_response(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        if method.server_streaming:
            return await self._stream(request, handler.unary_stream(message, context))
        try:
            response = await handler.unary_unary(message, context)
        except GatewayAbort as err:
            return error_response(err.code, err.details)
        except Exception as err:  # noqa: BLE001 - a handler failure is the call's UNKNOWN status
            return error_response(grpc.StatusCode.UNKNOWN, str(err))
        return web.Response(status=200, body=dump(message_json(response)), content_type="application/json")

    async def _stream(self, request: web.Request, responses: AsyncIterator[Message]) -> web.StreamResponse:
        answer = web.StreamResponse(status=200)
        answer.content_type = "application/json"
        started = False
        try:
            async for response in responses:
                if not started:
                    await answer.prepare(request)
                    started = True
                await answer.write(dump({"result": message_json(response)}) + b"\n")
        except GatewayAbort as err:
            if not started:
                answer.set_status(HTTP_STATUS.get(err.code, 500))
                await answer.prepare(request)
                started = True
            await answer.write(stream_error_chunk(err.code, err.details))
        except (ConnectionResetError, asyncio.CancelledError):
            with contextlib.suppress(Exception):
                await responses.aclose()  # type: ignore[attr-defined]
            raise
        if not started:
            await answer.prepare(request)
        await answer.write_eof()
        return answer


async def _requests(items: list[Message], hold_open: bool) -> AsyncIterator[Message]:
    for item in items:
        yield item
    if hold_open:
        await asyncio.Event().wait()  # until the HTTP client goes away and the call is cancelled
