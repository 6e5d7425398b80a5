"""The client-port front forgets an HTTP/1.1 connection once it is closed (no growth per connection)."""

from __future__ import annotations

import asyncio
import gc
import socket

import grpc
import pytest

from pyetcd.errors import StartupError
from pyetcd.http.front import ClientPortFront

CONNECTIONS = 50


class _CloseAfterRequest(asyncio.Protocol):
    """Answers any bytes with a fixed response, then closes, as a `Connection: close` reply does."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        self._transport.close()


async def _one_request(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
    reply = await reader.read()
    writer.close()
    await writer.wait_closed()
    return reply


async def _serve_many() -> tuple[int, int]:
    front = ClientPortFront(_CloseAfterRequest)
    front.bind(["http://127.0.0.1:0"])
    port = front._listeners[0][0].getsockname()[1]
    front.start()
    try:
        for _ in range(CONNECTIONS):
            assert (await _one_request(port)).startswith(b"HTTP/1.1 200")
        await asyncio.sleep(0.1)  # let the loop run the transports' connection_lost callbacks
        gc.collect()
        return CONNECTIONS, len(front._http_transports)
    finally:
        await front.stop()


def test_closed_http_connections_are_not_kept() -> None:
    served, kept = asyncio.run(_serve_many())
    assert served == CONNECTIONS
    assert kept == 0


def test_taken_private_grpc_address_fails_startup() -> None:
    front = ClientPortFront(None)
    taken = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    taken.bind(front._grpc_socket_name)
    taken.listen()

    async def listen() -> None:
        server = grpc.aio.server()
        try:
            front.listen_grpc(server)
        finally:
            await server.stop(None)

    try:
        with pytest.raises(StartupError, match="address already in use"):
            asyncio.run(listen())
    finally:
        taken.close()
