"""A serving process's link to the core for KV calls: natural batching over one unix socket.

One batch is in flight at a time; calls that arrive meanwhile queue, and the next batch leaves the
moment the core answers (at most MAX_BATCH calls each). Under load a batch carries many calls, so
the core runs them together; a lone call leaves at once.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import grpc

from pyetcd.serving import wire

log = logging.getLogger("pyetcd.serving")

MAX_BATCH = 256
CONNECT_TIMEOUT_S = 30.0
CONNECT_RETRY_S = 0.05
CORE_LOST: wire.Answer = (grpc.StatusCode.UNAVAILABLE.value[0], b"etcdserver: the member's core process is gone")


class CoreLink:
    """One connection to the core's batch socket, with the calls waiting for the next batch."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.lost = asyncio.Event()
        self.batches = 0
        self.calls = 0
        self._reader = reader
        self._writer = writer
        self._pending: list[tuple[wire.Call, asyncio.Future[wire.Answer]]] = []
        self._in_flight: dict[int, list[asyncio.Future[wire.Answer]]] = {}
        self._next_batch_id = 0
        self._flush_scheduled = False
        self._receiver = asyncio.create_task(self._receive(), name="core-answers")

    @classmethod
    async def connect(cls, socket_name: str) -> CoreLink:
        """Connect to the core's batch socket (abstract name, leading NUL included)."""
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(socket_name)  # an abstract name, which uvloop's own connect refuses
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(CONNECT_RETRY_S)
            else:
                sock.setblocking(False)
                reader, writer = await asyncio.open_unix_connection(sock=sock)
                return cls(reader, writer)

    async def call(self, call: wire.Call) -> wire.Answer:
        if self.lost.is_set():
            return CORE_LOST
        future: asyncio.Future[wire.Answer] = asyncio.get_running_loop().create_future()
        self._pending.append((call, future))
        if not self._flush_scheduled and not self._in_flight:
            # On the next loop turn, so that the calls arriving in this one leave together.
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._in_flight or not self._pending or self.lost.is_set():
            return
        batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
        batch_id = self._next_batch_id
        self._next_batch_id += 1
        self._in_flight[batch_id] = [future for _, future in batch]
        self._writer.write(wire.encode_calls(batch_id, [call for call, _ in batch]))
        self.batches += 1
        self.calls += len(batch)

    async def _receive(self) -> None:
        try:
            while True:
                batch_id, answers = wire.decode_answers(await wire.read_body(self._reader))
                for future, answer in zip(self._in_flight.pop(batch_id), answers, strict=True):
                    if not future.done():  # the client may have given up meanwhile
                        future.set_result(answer)
                self._flush()
        except (asyncio.IncompleteReadError, ConnectionError):
            log.warning("the core closed the batch connection")
        finally:
            self.lost.set()
            waiting = [future for futures in self._in_flight.values() for future in futures]
            waiting += [future for _, future in self._pending]
            for future in waiting:
                if not future.done():
                    future.set_result(CORE_LOST)

    async def close(self) -> None:
        self._writer.close()
        self._receiver.cancel()
        await asyncio.gather(self._receiver, return_exceptions=True)
