"""The core process: an unchanged pyetcd member (Raft, store, applier) that leaves the client port to
the fronts and answers their batches on a unix socket instead.

Its ordinary gRPC server still runs, on a private admin address, so tools (etcdctl, Watch, Lease,
Maintenance) can reach the member; the advertised client URLs stay the public ones the fronts serve.

`python -m benchmarks.experiments.front_processes.core --batch-socket PATH --admin-url URL <etcd flags>`

With `--listen-batched HOST:PORT` instead of fronts, the core serves KV itself through the same
batching (the control variant: batching without a second process).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import grpc

from benchmarks.experiments.front_processes import wire
from benchmarks.experiments.front_processes.front import front_server
from etcdpb.etcdserverpb import rpc_pb2
from pyetcd.api.handlers import service_handlers
from pyetcd.api.kv import KVServicer
from pyetcd.cli import exit_like_etcd, refuse_configuration, run_async, run_server, setup_logging
from pyetcd.config import ConfigError, ServerConfig, parse_server_args
from pyetcd.errors import StartupError
from pyetcd.server import EtcdServer

log = logging.getLogger("pyetcd.front_core")


class Aborted(Exception):
    """What `context.abort` raises here: the gRPC status a front will give its client."""

    def __init__(self, code: Any, details: str) -> None:
        super().__init__(details)
        self.number: int = code.value[0]
        self.details = details


class BatchContext:
    """What pyetcd's KV handlers ask of a gRPC context: the call's metadata (where an auth token
    would be; the fronts forward none, so the experiment serves members without auth) and a way
    to end the call with a status."""

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return ()

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}

    async def abort(self, code: Any, details: str = "") -> None:
        raise Aborted(code, details)


class BatchService:
    """Answers front batches through pyetcd's own KV method handlers (etcd's checks included), all
    of a batch's items concurrently, so its puts share a Raft Ready and its reads one ReadIndex."""

    def __init__(self, server: EtcdServer) -> None:
        service = rpc_pb2.DESCRIPTOR.services_by_name["KV"]
        handlers = service_handlers(service, KVServicer(server), server)
        self._handlers = [handlers[name] for name in wire.METHODS]
        self._context = BatchContext()
        self._writers: set[asyncio.StreamWriter] = set()
        self._listener: asyncio.AbstractServer | None = None

    async def listen(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # left behind by a core that was killed
        self._listener = await asyncio.start_unix_server(self._serve_front, path)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        for writer in list(self._writers):
            writer.close()

    async def _serve_front(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        answering: set[asyncio.Task[None]] = set()
        try:
            while True:
                batch_id, items = await wire.read_frame(reader)
                task = asyncio.create_task(self._answer(batch_id, items, writer))
                answering.add(task)
                task.add_done_callback(answering.discard)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the front went away; its clients see UNAVAILABLE from it
        finally:
            self._writers.discard(writer)
            for task in answering:
                task.cancel()
            writer.close()

    async def _answer(self, batch_id: int, items: list[wire.Item], writer: asyncio.StreamWriter) -> None:
        answers = await self.answer(items)
        if not writer.is_closing():
            writer.write(wire.encode(batch_id, answers))

    async def answer(self, items: Sequence[wire.Item]) -> list[wire.Item]:
        """(method, request) -> (status, response or message), for every item of one batch."""
        return await asyncio.gather(*(self._call(method, raw) for method, raw in items))

    async def _call(self, method: int, raw: bytes) -> wire.Item:
        handler = self._handlers[method]
        try:
            response = await handler.unary_unary(handler.request_deserializer(raw), self._context)
        except Aborted as err:
            return err.number, err.details.encode()
        except Exception as err:  # noqa: BLE001 - what grpc.aio would answer for an unexpected error
            return grpc.StatusCode.UNKNOWN.value[0], f"Unexpected {type(err).__name__}: {err}".encode()
        return 0, handler.response_serializer(response)


class LocalBatcher:
    """A front's natural batching without the front: the control variant that tells what batching
    alone gains. Calls queue while a batch is being answered; the next leaves when it is done."""

    def __init__(self, service: BatchService, max_batch: int) -> None:
        self.max_batch = max_batch
        self.batches = 0
        self.calls = 0
        self._service = service
        self._pending: list[tuple[int, bytes, asyncio.Future[wire.Item]]] = []
        self._busy = False
        self._flush_scheduled = False

    async def call(self, method: int, raw: bytes) -> wire.Item:
        future: asyncio.Future[wire.Item] = asyncio.get_running_loop().create_future()
        self._pending.append((method, raw, future))
        if not self._busy and not self._flush_scheduled:
            self._flush_scheduled = True  # on the next loop turn, as a front does
            asyncio.get_running_loop().call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._busy or not self._pending:
            return
        batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
        self._busy = True
        self.batches += 1
        self.calls += len(batch)
        asyncio.get_running_loop().create_task(self._run(batch))

    async def _run(self, batch: list[tuple[int, bytes, asyncio.Future[wire.Item]]]) -> None:
        try:
            answers = await self._service.answer([(method, raw) for method, raw, _ in batch])
        finally:
            self._busy = False
        for (_, _, future), answer in zip(batch, answers, strict=True):
            if not future.done():
                future.set_result(answer)
        self._flush()


class BatchListener:
    """The core's extra client listener: the batch service for the fronts (on `batch_socket`) or, for the
    control variant, batched KV on `batched_addresses` itself. pyetcd's command starts it beside the gRPC
    API once the member is ready, and stops it before the member."""

    def __init__(self, batch_socket: str | None, batched_addresses: Sequence[str] = (), max_batch: int = 256) -> None:
        self.batch_socket = batch_socket
        self.batched_addresses = tuple(batched_addresses)
        self.max_batch = max_batch
        self._server: EtcdServer | None = None
        self._batches: BatchService | None = None
        self._local: LocalBatcher | None = None
        self._batched_server: grpc.aio.Server | None = None

    async def start(self, etcd: EtcdServer) -> None:
        self._server = etcd
        self._batches = BatchService(etcd)
        if self.batch_socket:
            await self._batches.listen(self.batch_socket)
            log.info("answering front batches on %s", self.batch_socket)
        if self.batched_addresses:
            self._local = LocalBatcher(self._batches, self.max_batch)
            server = front_server(self._local, etcd.config.max_request_bytes)
            for address in self.batched_addresses:
                if server.add_insecure_port(address) == 0:
                    raise StartupError(f"listen tcp {address}: bind: address already in use")
            await server.start()
            self._batched_server = server
            log.info("serving batched KV in this process on %s", ",".join(self.batched_addresses))

    async def stop(self) -> None:
        if self._batched_server is not None:
            await self._batched_server.stop(grace=0.5)
        if self._local is not None:
            log.info("answered %d calls in %d local batches (%.1f per batch)", self._local.calls,
                     self._local.batches, self._local.calls / max(1, self._local.batches))
        if self._batches is not None:
            await self._batches.close()
        if self._server is not None:
            node = self._server.node
            log.info("raft saved %d entries in %d log writes", node.saved_entries, node.saves)


def core_config(etcd_args: Sequence[str], admin_url: str) -> ServerConfig | None:
    """The member's configuration from etcd's flags, listening for clients on `admin_url` only."""
    config = parse_server_args(list(etcd_args), refuse_shadowed_env=True)
    if config is None:
        return None
    return dataclasses.replace(config, listen_client_urls=(admin_url,))


async def run_core(config: ServerConfig, batch_socket: str | None, batched_addresses: Sequence[str]) -> int:
    return await run_server(config, [BatchListener(batch_socket, batched_addresses)])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch-socket", help="unix socket the fronts send batches to")
    parser.add_argument("--listen-batched", action="append", default=[],
                        help="host:port where this process serves KV with batching itself (no fronts)")
    parser.add_argument("--admin-url", required=True, help="private client URL of the full gRPC API")
    args, etcd_args = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    try:
        config = core_config(etcd_args, args.admin_url)
    except ConfigError as err:
        return refuse_configuration(err)
    if config is None:
        return 0
    setup_logging(config.log_level)
    return exit_like_etcd(run_async(run_core(config, args.batch_socket, args.listen_batched)))


if __name__ == "__main__":
    sys.exit(main())
