"""The core's end of the serving processes' batch link: every KV call of a batch run through pyetcd's own
KV method handlers, all at once, so a batch's puts share a Raft Ready and its reads one ReadIndex.

Each call runs with a stand-in for its gRPC context that gives the handlers what the serving process
saw (the auth token) and captures
`context.abort`, so an error goes back as the exact status and message a single process would give.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence
from typing import Any

import grpc

from etcdpb.etcdserverpb import rpc_pb2
from pyetcd.api.handlers import service_handlers
from pyetcd.api.kv import KVServicer
from pyetcd.api.server_api import EtcdServerApi
from pyetcd.api.stats import GrpcStats
from pyetcd.errors import StartupError
from pyetcd.serving import wire

log = logging.getLogger("pyetcd.serving")


class CallAborted(Exception):
    """What `context.abort` raises for a batched call: the status its serving process will answer with."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class BatchedCallContext:
    """The part of a grpc.aio servicer context that pyetcd's KV handlers use, for one batched call."""

    def __init__(self, call: wire.Call) -> None:
        self._call = call
        self._code: grpc.StatusCode | None = None

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return () if self._call.token is None else (("token", self._call.token),)

    def auth_context(self) -> dict[str, list[bytes]]:
        """No client certificate: a member with serving processes refuses --client-cert-auth (config.py)."""
        return {}

    def code(self) -> grpc.StatusCode | None:
        return self._code

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()) -> None:
        self._code = code
        raise CallAborted(code, details)


class BatchService:
    """Answers the serving processes' batches on a unix socket."""

    def __init__(self, etcd: EtcdServerApi, stats: GrpcStats | None = None) -> None:
        service = rpc_pb2.DESCRIPTOR.services_by_name["KV"]
        handlers = service_handlers(service, KVServicer(etcd), etcd, stats)
        self._handlers = [handlers[name] for name in wire.METHODS]
        self._listener: asyncio.AbstractServer | None = None
        self._links: set[asyncio.StreamWriter] = set()

    async def listen(self, socket_name: str) -> None:
        """Accept serving processes on the abstract unix socket `socket_name` (leading NUL included)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(socket_name)  # an abstract name, bound here as uvloop's own bind refuses those
        except OSError as err:
            sock.close()
            raise StartupError(f"listen unix @{socket_name.lstrip(chr(0))}: bind: {err.strerror}") from None
        sock.listen(128)
        sock.setblocking(False)
        self._listener = await asyncio.start_unix_server(self._serve_link, sock=sock)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        for writer in list(self._links):
            writer.close()  # the serving process sees the batch connection end, and stops

    async def _serve_link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._links.add(writer)
        answering: set[asyncio.Task[None]] = set()
        try:
            while True:
                batch_id, calls = wire.decode_calls(await wire.read_body(reader))
                task = asyncio.create_task(self._answer(batch_id, calls, writer))
                answering.add(task)
                task.add_done_callback(answering.discard)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the serving process went away (or the member closed the link); its clients went with it
        finally:
            self._links.discard(writer)
            for task in answering:
                task.cancel()
            writer.close()

    async def _answer(self, batch_id: int, calls: list[wire.Call], writer: asyncio.StreamWriter) -> None:
        answers = await self.answer(calls)
        if not writer.is_closing():
            writer.write(wire.encode_answers(batch_id, answers))

    async def answer(self, calls: Sequence[wire.Call]) -> list[wire.Answer]:
        """Every call of one batch, answered concurrently; the answers in the calls' order."""
        return await asyncio.gather(*(self._run(call) for call in calls))

    async def _run(self, call: wire.Call) -> wire.Answer:
        handler = self._handlers[call.method]
        context = BatchedCallContext(call)
        try:
            response = await handler.unary_unary(handler.request_deserializer(call.request), context)
        except CallAborted as err:
            return err.code.value[0], err.details.encode()
        except Exception as err:  # noqa: BLE001 - what grpc.aio answers for an unexpected error
            log.exception("batched %s failed", wire.METHODS[call.method])
            return grpc.StatusCode.UNKNOWN.value[0], f"Unexpected {type(err).__name__}: {err}".encode()
        return 0, handler.response_serializer(response)

