"""The L4 gateway's relay in one process: round robin, dead endpoints skipped and re-checked, flow control."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from pyetcd.proxy.gateway_command import ZapProductionFormatter, plan_gateway, split_host_port, strip_scheme
from pyetcd.proxy.gateway_flags import FlagError, GatewayFlags, parse_start_flags
from pyetcd.proxy.tcp_gateway import Remote, TCPGateway
from tests.helpers.certs import CertificateAuthority
from tests.helpers.servers import HOST, free_port

GatewayFactory = Callable[[list[Remote], float], Awaitable[TCPGateway]]


@pytest.fixture
async def start_gateway() -> AsyncIterator[GatewayFactory]:
    """Starts gateways on kernel-picked ports; every one is stopped."""
    started: list[TCPGateway] = []

    async def start(remotes: list[Remote], interval: float) -> TCPGateway:
        listener = socket.create_server((HOST, 0))
        listener.setblocking(False)
        gateway = TCPGateway(remotes, monitor_interval=interval)
        started.append(gateway)
        await gateway.start(listener)
        return gateway

    try:
        yield start
    finally:
        for gateway in started:
            await gateway.stop()


async def named_server(name: bytes, port: int = 0) -> asyncio.Server:
    """A server that greets each connection with its name (it speaks first, as an HTTP/2 server does)."""
    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(name)
            await writer.drain()
            await reader.read()
        except ConnectionResetError:
            pass
        writer.close()

    return await asyncio.start_server(greet, HOST, port)


async def greeting(port: int) -> bytes:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        return await asyncio.wait_for(reader.read(100), 5)
    finally:
        writer.close()


async def until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"never happened: {what}")


async def test_round_robin_skips_a_dead_endpoint_until_the_monitor_reaches_it(
        start_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pyetcd.proxy.tcp_gateway")
    first, second = await named_server(b"a"), await named_server(b"b")
    dead_port = free_port()
    ports = [server.sockets[0].getsockname()[1] for server in (first, second)]
    remotes = [Remote(HOST, dead_port), Remote(HOST, ports[0]), Remote(HOST, ports[1])]
    gateway = await start_gateway(remotes, 0.2)
    try:
        assert [await greeting(gateway.listen_port) for _ in range(4)] == [b"a", b"b", b"a", b"b"]
        assert remotes[0].inactive
        deactivated = [r for r in caplog.records if r.getMessage() == "deactivated endpoint"]
        assert len(deactivated) == 1
        assert deactivated[0].fields == {
            "address": f"{HOST}:{dead_port}", "interval": 0.2,
            "error": f"dial tcp {HOST}:{dead_port}: connect: connection refused"}

        await until(lambda: any(r.getMessage() == "failed to activate endpoint (stay inactive for another interval)"
                                for r in caplog.records), "the monitor dials the dead endpoint")
        assert remotes[0].inactive
        third = await named_server(b"c", dead_port)
        try:
            await until(lambda: not remotes[0].inactive, "the endpoint is reactivated")
            assert any(r.getMessage() == "activated" for r in caplog.records)
            seen = [await greeting(gateway.listen_port) for _ in range(3)]
            assert sorted(seen) == [b"a", b"b", b"c"]
        finally:
            third.close()
    finally:
        first.close()
        second.close()


async def test_a_client_is_closed_when_every_endpoint_is_dead(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway([Remote(HOST, free_port()), Remote(HOST, free_port())], 60)
    assert await greeting(gateway.listen_port) == b""
    assert all(remote.inactive for remote in gateway.remotes)


async def test_a_large_stream_arrives_whole_and_in_order_through_flow_control(
        start_gateway: GatewayFactory) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, HOST, 0)
    payload = os.urandom(24 * 1024 * 1024)
    try:
        gateway = await start_gateway([Remote(HOST, server.sockets[0].getsockname()[1])], 60)
        reader, writer = await asyncio.open_connection(HOST, gateway.listen_port)

        async def send() -> None:
            writer.write(payload)
            await writer.drain()

        sending = asyncio.ensure_future(send())
        received = await asyncio.wait_for(reader.readexactly(len(payload)), 60)
        await sending
        assert hashlib.sha256(received).digest() == hashlib.sha256(payload).digest()
        writer.close()
    finally:
        server.close()


async def test_tls_passes_through_to_the_endpoint_untouched(start_gateway: GatewayFactory, tmp_path: Path) -> None:
    """The gateway has no TLS of its own: a client's handshake reaches the endpoint, which it verifies."""
    authority = CertificateAuthority(tmp_path)
    leaf = authority.issue("server")
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(leaf.cert, leaf.key)

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.read(100))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, HOST, 0, ssl=server_side)
    try:
        gateway = await start_gateway([Remote(HOST, server.sockets[0].getsockname()[1])], 60)
        client_side = ssl.create_default_context(cafile=str(authority.cert_path))
        reader, writer = await asyncio.open_connection(HOST, gateway.listen_port, ssl=client_side,
                                                       server_hostname=HOST)
        writer.write(b"over tls")
        assert await asyncio.wait_for(reader.read(100), 5) == b"over tls"
        writer.close()
    finally:
        server.close()


async def test_stop_drops_relayed_connections(start_gateway: GatewayFactory) -> None:
    server = await named_server(b"a")
    try:
        gateway = await start_gateway([Remote(HOST, server.sockets[0].getsockname()[1])], 60)
        reader, writer = await asyncio.open_connection(HOST, gateway.listen_port)
        assert await reader.read(1) == b"a"
        await gateway.stop()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        with pytest.raises(OSError):
            await asyncio.open_connection(HOST, gateway.listen_port)
    finally:
        server.close()


def test_endpoints_and_flags_are_read_as_etcd_reads_them() -> None:
    assert strip_scheme("http://127.0.0.1:2379") == "127.0.0.1:2379"
    assert strip_scheme("https://user@host:1") == "host:1"
    assert strip_scheme("localhost:2379") == "localhost:2379"
    assert split_host_port("[::1]:2379") == ("::1", "2379")
    assert split_host_port("a:b:c") is None and split_host_port("nocolon") is None
    flags = parse_start_flags(["--endpoints", "a:1,b:2", "--endpoints=c:3", "--retry-delay=1m30s",
                               "--insecure-discovery"])
    assert flags.endpoints == ["a:1", "b:2", "c:3"]
    assert flags.retry_delay == 90.0 and flags.insecure_discovery
    assert GatewayFlags().endpoints == ["127.0.0.1:2379"] and GatewayFlags().retry_delay == 60.0
    with pytest.raises(FlagError, match="flag needs an argument: --endpoints"):
        parse_start_flags(["--endpoints"])
    remotes, host, port = plan_gateway(parse_start_flags(["--endpoints=http://127.0.0.1:1,127.0.0.1:2"]))
    assert [r.address for r in remotes] == ["127.0.0.1:1", "127.0.0.1:2"] and (host, port) == (HOST, "23790")


def test_log_lines_are_zap_production_json() -> None:
    record = logging.LogRecord("pyetcd.proxy.tcp_gateway", logging.WARNING, "/x/proxy/tcp_gateway.py", 7,
                               "deactivated endpoint", None, None)
    record.fields = {"address": "h:1", "interval": 60.0, "error": "e"}
    line = ZapProductionFormatter().format(record)
    assert line.startswith('{"level":"warn","ts":')
    assert line.endswith(',"caller":"proxy/tcp_gateway.py:7","msg":"deactivated endpoint",'
                         '"address":"h:1","interval":60,"error":"e"}')
