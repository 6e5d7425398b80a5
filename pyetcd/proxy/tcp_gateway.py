"""`pyetcd gateway start`: etcd's L4 TCP gateway (etcdmain/gateway.go, proxy/tcpproxy).

Each client connection is forwarded whole to one endpoint, chosen round robin among the ones
that are up; an endpoint that refuses a connection is set aside for --retry-delay and then
dialled again in the background. Bytes are relayed by the kernel (splice), as on the client port.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

from pyetcd.flagvalues import parse_go_duration
from pyetcd.http.front import bind_url
from pyetcd.http.splice_relay import SpliceRelay

log = logging.getLogger("pyetcd.tcpproxy")
DIAL_TIMEOUT_S = 3.0


@dataclass(slots=True)
class Remote:
    address: str
    inactive_until: float = 0.0

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.address.rpartition(":")
        return host.strip("[]"), int(port)


@dataclass
class TcpGateway:
    """Round robin over `endpoints`, skipping the ones that failed in the last `retry_delay_s`."""

    endpoints: Sequence[str]
    listen_addr: str
    retry_delay_s: float = 60.0
    remotes: list[Remote] = field(init=False)
    _next: int = field(default=0, init=False)
    _relays: set[SpliceRelay] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        self.remotes = [Remote(address) for address in self.endpoints]

    def pick(self, now: float) -> Remote | None:
        for _ in range(len(self.remotes)):
            remote = self.remotes[self._next % len(self.remotes)]
            self._next += 1
            if remote.inactive_until <= now:
                return remote
        return None

    async def serve(self, stop: asyncio.Event) -> None:
        [listener] = bind_url(f"http://{self.listen_addr}")[:1]
        log.info("ready to proxy client requests to %s", [r.address for r in self.remotes])
        accepting = asyncio.ensure_future(self._accept_loop(listener))
        try:
            await stop.wait()
        finally:
            accepting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await accepting
            listener.close()
            for relay in list(self._relays):
                relay.close()

    async def _accept_loop(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[None]] = set()
        while True:
            client, _ = await loop.sock_accept(listener)
            task = asyncio.ensure_future(self._forward(client))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    async def _forward(self, client: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while (remote := self.pick(loop.time())) is not None:
            host, port = remote.host_port
            upstream = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
            upstream.setblocking(False)
            try:
                async with asyncio.timeout(DIAL_TIMEOUT_S):
                    await loop.sock_connect(upstream, (host, port))
            except (OSError, TimeoutError) as err:
                upstream.close()
                remote.inactive_until = loop.time() + self.retry_delay_s
                log.warning("deactivated endpoint [%s] due to %s for %s", remote.address, err or "timeout",
                            f"{self.retry_delay_s:g}s")
                continue
            relay = SpliceRelay(client, upstream, on_closed=self._relays.discard)
            self._relays.add(relay)
            relay.start()
            return
        log.warning("no endpoints are available")
        client.close()


def add_gateway_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen-addr", default="127.0.0.1:23790", help="listen address")
    parser.add_argument("--endpoints", default="127.0.0.1:2379", help="comma separated etcd cluster endpoints")
    parser.add_argument("--retry-delay", default="1m0s", help="duration of delay before retrying failed endpoints")
    parser.add_argument("--discovery-srv", default="", help="DNS domain used to bootstrap initial cluster")
    parser.add_argument("--discovery-srv-name", default="", help="service name to query when using DNS discovery")
    parser.add_argument("--insecure-discovery", action="store_true", help="accept insecure SRV records")
    parser.add_argument("--trusted-ca-file", default="",
                        help="path to the client server TLS CA file for verifying the discovered endpoints when "
                             "discovery-srv is provided.")


class GatewayConfigError(Exception):
    pass


def gateway_from_args(args: argparse.Namespace) -> TcpGateway:
    if args.discovery_srv or args.discovery_srv_name or args.insecure_discovery or args.trusted_ca_file:
        raise GatewayConfigError("--discovery-srv and TLS discovery are not supported by pyetcd's gateway; "
                                 "list the members with --endpoints")
    endpoints = []
    for item in args.endpoints.split(","):
        item = item.strip()
        if not item:
            continue
        if "://" in item:
            item = item.split("://", 1)[1]
        host, sep, port = item.rpartition(":")
        if not sep or not port.isdigit():
            raise GatewayConfigError(f'error parsing endpoint "{item}"')
        endpoints.append(item)
    if not endpoints:
        raise GatewayConfigError("no endpoints found")
    try:
        delay = parse_go_duration(args.retry_delay)
    except ValueError:
        raise GatewayConfigError(f'invalid argument "{args.retry_delay}" for "--retry-delay" flag') from None
    return TcpGateway(endpoints, args.listen_addr, delay)
