"""A front process: serves the member's client port beside its sibling fronts (SO_REUSEPORT: the
kernel spreads the clients' connections over them) and forwards KV calls to the core in batches.

Batching is natural: while `max_in_flight` batches wait for the core, new calls queue up, and the
next batch leaves the moment one is answered (at most `max_batch` calls each). Requests and
answers stay serialized end to end; only the core decodes them. Other services are UNIMPLEMENTED
here (the core's admin address serves them).

`python -m benchmarks.experiments.front_processes.front --listen HOST:PORT --core PATH`
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import grpc

from benchmarks.experiments.front_processes import wire
from pyetcd.api.handlers import transport_receive_limit
from pyetcd.cli import run_async, setup_logging
from pyetcd.config import ServerConfig

log = logging.getLogger("pyetcd.front")

KV_SERVICE = "etcdserverpb.KV"
CONNECT_TIMEOUT_S = 120.0
CONNECT_RETRY_S = 0.1
CORE_LOST = (grpc.StatusCode.UNAVAILABLE.value[0], b"front: the core process is gone")
SERVING = "front serving"
"""Logged once the front accepts clients; launchers wait for this line."""


class CoreLink:
    """One unix-socket connection to the core, with the queue of calls waiting for a batch."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, max_batch: int,
                 max_in_flight: int) -> None:
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self.lost = asyncio.Event()
        self.batches = 0
        self.calls = 0
        self._reader = reader
        self._writer = writer
        self._pending: list[tuple[int, bytes, asyncio.Future[wire.Item]]] = []
        self._in_flight: dict[int, list[asyncio.Future[wire.Item]]] = {}
        self._next_batch_id = 0
        self._flush_scheduled = False
        self._receiver = asyncio.create_task(self._receive(), name="core-answers")

    @classmethod
    async def connect(cls, path: str, max_batch: int, max_in_flight: int) -> CoreLink:
        """Waits for the core to open its socket (it does once its member is ready)."""
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(path)
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(CONNECT_RETRY_S)
            else:
                return cls(reader, writer, max_batch, max_in_flight)

    async def call(self, method: int, raw: bytes) -> wire.Item:
        if self.lost.is_set():
            return CORE_LOST
        future: asyncio.Future[wire.Item] = asyncio.get_running_loop().create_future()
        self._pending.append((method, raw, future))
        if not self._flush_scheduled and len(self._in_flight) < self.max_in_flight:
            # On the next loop turn, so the calls that arrive in this one leave together.
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._flush_scheduled = False
        while self._pending and len(self._in_flight) < self.max_in_flight and not self.lost.is_set():
            batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
            batch_id = self._next_batch_id
            self._next_batch_id += 1
            self._in_flight[batch_id] = [future for _, _, future in batch]
            self._writer.write(wire.encode(batch_id, [(method, raw) for method, raw, _ in batch]))
            self.batches += 1
            self.calls += len(batch)

    async def _receive(self) -> None:
        try:
            while True:
                batch_id, answers = await wire.read_frame(self._reader)
                for future, answer in zip(self._in_flight.pop(batch_id), answers, strict=True):
                    if not future.done():  # the client may have given up meanwhile
                        future.set_result(answer)
                self._flush()
        except (asyncio.IncompleteReadError, ConnectionError):
            log.warning("the core closed the batch connection")
        finally:
            self.lost.set()
            waiting = [future for futures in self._in_flight.values() for future in futures]
            waiting += [future for _, _, future in self._pending]
            for future in waiting:
                if not future.done():
                    future.set_result(CORE_LOST)

    async def close(self) -> None:
        self._writer.close()
        self._receiver.cancel()
        await asyncio.gather(self._receiver, return_exceptions=True)


Handler = Callable[[bytes, Any], Awaitable[bytes]]


class Forwarder(Protocol):
    """Where a front's KV calls go: the core over its socket, or (control variant) the core itself."""

    async def call(self, method: int, raw: bytes) -> wire.Item: ...


def forwarder(method: int, link: Forwarder) -> Handler:
    """A raw-bytes unary handler: the request goes to the core as is, its answer comes back as is."""
    async def forward(request: bytes, context: Any) -> bytes:
        status, payload = await link.call(method, request)
        if status:
            await context.abort(wire.STATUS_BY_NUMBER[status], payload.decode("utf-8", "replace"))
        return payload
    return forward


class UnservedMethods(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Every method the front does not forward: UNIMPLEMENTED, pointing at the core's admin address."""

    def service(self, handler_call_details: Any) -> Any:
        message = f"{handler_call_details.method} is not served by the front processes experiment"

        async def refuse(request: bytes, context: Any) -> bytes:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, message)
            raise AssertionError("grpc context.abort returned")  # pragma: no cover

        return grpc.unary_unary_rpc_method_handler(refuse)


def front_server(link: Forwarder, max_request_bytes: int) -> grpc.aio.Server:
    server = grpc.aio.server(options=[
        ("grpc.so_reuseport", 1),  # the sibling fronts bind the same address
        ("grpc.max_receive_message_length", transport_receive_limit(max_request_bytes)),
        ("grpc.max_send_message_length", 2**31 - 1),
        ("grpc.max_concurrent_streams", 2**31 - 1),
    ])
    handlers = {name: grpc.unary_unary_rpc_method_handler(forwarder(number, link))
                for number, name in enumerate(wire.METHODS)}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(KV_SERVICE, handlers),))
    server.add_registered_method_handlers(KV_SERVICE, handlers)
    server.add_generic_rpc_handlers((UnservedMethods(),))
    return server


async def serve(addresses: Sequence[str], core_socket: str, max_batch: int, max_in_flight: int,
                max_request_bytes: int) -> int:
    link = await CoreLink.connect(core_socket, max_batch, max_in_flight)
    server = front_server(link, max_request_bytes)
    for address in addresses:
        if server.add_insecure_port(address) == 0:
            log.error("cannot listen on %s", address)
            await link.close()
            return 1
    await server.start()
    log.info("%s on %s, batches to %s", SERVING, ",".join(addresses), core_socket)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    stopped, lost = asyncio.create_task(stop.wait()), asyncio.create_task(link.lost.wait())
    await asyncio.wait([stopped, lost], return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    lost.cancel()
    await server.stop(grace=0.5)
    log.info("forwarded %d calls in %d batches (%.1f per batch)", link.calls, link.batches,
             link.calls / max(1, link.batches))
    await link.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", action="append", required=True, help="host:port (repeatable)")
    parser.add_argument("--core", required=True, help="the core's batch socket")
    parser.add_argument("--max-batch", type=int, default=256, help="calls per batch at most")
    parser.add_argument("--max-in-flight", type=int, default=1, help="batches waiting for the core at most")
    parser.add_argument("--max-request-bytes", type=int, default=ServerConfig().max_request_bytes)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    setup_logging("info")
    return run_async(serve(args.listen, args.core, args.max_batch, args.max_in_flight, args.max_request_bytes))


if __name__ == "__main__":
    sys.exit(main())
