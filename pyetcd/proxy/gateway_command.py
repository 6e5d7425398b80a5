"""`pyetcd gateway start`: checks the flags as etcd's etcdmain/gateway.go does, binds, and runs the gateway.

etcd's gateway refuses bad endpoints and listen addresses with short lines on stdout and logs as zap's
production logger does (JSON lines on stderr); pyetcd's says the same. DNS SRV discovery is refused
with a clear error instead of being looked up.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from pyetcd.process_run import exit_like_etcd, run_async
from pyetcd.proxy.gateway_flags import (
    GATEWAY_HELP,
    GATEWAY_USAGE,
    PROGRAM,
    START_HELP,
    START_USAGE,
    FlagError,
    GatewayFlags,
    parse_start_flags,
)
from pyetcd.proxy.tcp_gateway import Remote, TCPGateway

log = logging.getLogger("pyetcd.proxy.gateway")


class GatewayRefusal(Exception):
    """A start-up refusal: etcd prints it (on stdout unless said otherwise) and exits 1."""

    def __init__(self, message: str, *, stderr: bool = False) -> None:
        super().__init__(message)
        self.stderr = stderr


class ZapProductionFormatter(logging.Formatter):
    """zap's production JSON lines: level, ts (Unix seconds), caller, msg, then the record's fields.

    etcd's gateway logs with zap.NewProduction(), not the member's logger configuration: its `ts` is a
    number of seconds where the member's (pyetcd.logs.ZapFormatter) is an ISO 8601 string.
    """

    def format(self, record: logging.LogRecord) -> str:
        path = Path(record.pathname)
        line: dict[str, object] = {
            "level": {"WARNING": "warn", "CRITICAL": "fatal"}.get(record.levelname, record.levelname.lower()),
            "ts": record.created,
            "caller": f"{path.parent.name}/{path.name}:{record.lineno}",
            "msg": record.getMessage(),
        }
        fields: dict[str, object] = getattr(record, "fields", {})
        for key, value in fields.items():
            # zap writes durations as seconds and a whole number without a fraction.
            line[key] = int(value) if isinstance(value, float) and value.is_integer() else value
        if record.exc_info:
            line["stacktrace"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, separators=(",", ":"))


def split_host_port(hostport: str) -> tuple[str, str] | None:
    """net.SplitHostPort: host and port of `host:port` or `[v6]:port`; None where Go returns an error."""
    colon = hostport.rfind(":")
    if colon < 0:
        return None
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0 or end + 1 != colon:
            return None
        host, tail_start = hostport[1:end], end + 1
        if "[" in hostport[1:] or "]" in hostport[tail_start:]:
            return None
    else:
        host = hostport[:colon]
        if ":" in host or "[" in hostport or "]" in hostport:
            return None
    return host, hostport[colon + 1:]


def strip_scheme(endpoint: str) -> str:
    """etcd's gateway relays TCP: `http://h:p` and `https://h:p` both mean `h:p`."""
    parts = urlsplit(endpoint) if "://" in endpoint else None
    if parts is not None and parts.netloc:
        return parts.netloc.rpartition("@")[2]
    return endpoint


def scan_port(text: str) -> int:
    """fmt.Sscanf(p, "%d", &uint16): the leading digits, or 0 where Go's scan fails."""
    match = re.match(r"\+?\d+", text)
    value = int(match.group()) if match else 0
    return value if value <= 0xFFFF else 0


def lookup_host(host: str) -> set[str] | None:
    """net.LookupHost: the addresses `host` resolves to, or None when it does not resolve."""
    if not host:
        return None
    try:
        return {str(info[4][0]) for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}
    except (socket.gaierror, UnicodeError):
        return None


def refuse_discovery(flags: GatewayFlags) -> None:
    """DNS SRV discovery is not built; its flags are refused rather than looked up or ignored."""
    used = [name for name, value in (("--discovery-srv", flags.discovery_srv),
                                     ("--discovery-srv-name", flags.discovery_srv_name),
                                     ("--insecure-discovery", flags.insecure_discovery),
                                     ("--trusted-ca-file", flags.trusted_ca_file)) if value]
    if used:
        raise GatewayRefusal(
            f"{', '.join(used)}: DNS SRV discovery is not supported by {PROGRAM} gateway; "
            "list the cluster's client endpoints with --endpoints", stderr=True)


def plan_gateway(flags: GatewayFlags) -> tuple[list[Remote], str, str]:
    """The endpoints to relay to and the listen host and port, checked in etcd's order with etcd's words."""
    refuse_discovery(flags)
    remotes: list[Remote] = []
    for endpoint in (strip_scheme(endpoint) for endpoint in flags.endpoints):
        parts = split_host_port(endpoint)
        if parts is None:
            raise GatewayRefusal(f'error parsing endpoint "{endpoint}"')
        remotes.append(Remote(parts[0], scan_port(parts[1])))
    listen = split_host_port(flags.listen_addr)
    if listen is None:
        raise GatewayRefusal(f"failed to validate listen address: {flags.listen_addr}\n")
    listen_host, listen_port = listen
    listen_addresses = lookup_host(listen_host)
    if listen_addresses is None:
        raise GatewayRefusal(f"failed to resolve listen host: {listen_host}\n")
    for remote in remotes:
        addresses = lookup_host(remote.host)
        if addresses is None:
            raise GatewayRefusal(f"failed to resolve endpoint host: {remote.host}\n")
        if str(remote.port) != listen_port:
            continue
        for address in sorted(addresses & listen_addresses):
            raise GatewayRefusal(
                f"SRV or endpoint ({remote.host}:{remote.port}->{address}:{remote.port}) should not resolve "
                f"to the gateway listen addr ({flags.listen_addr})\n")
    if not remotes:
        raise GatewayRefusal("no endpoints found\n")
    return remotes, listen_host, listen_port


def listen(host: str, port: str) -> socket.socket:
    """net.Listen("tcp", host:port): the first IPv4 address (else IPv6) of `host`, with SO_REUSEADDR."""
    address = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    try:
        infos = socket.getaddrinfo(host, int(port or "0"), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, ValueError):
        raise GatewayRefusal(f"listen tcp {address}: unknown port", stderr=True) from None
    family, kind, proto, _, sockaddr = sorted(infos, key=lambda info: info[0] != socket.AF_INET)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(socket.SOMAXCONN)
    except OSError as err:
        sock.close()
        reason = os.strerror(err.errno).lower() if err.errno else str(err)
        raise GatewayRefusal(f"listen tcp {address}: bind: {reason}", stderr=True) from None
    sock.setblocking(False)
    return sock


def notify_systemd() -> None:
    """sd_notify(READY=1) when run by systemd (NOTIFY_SOCKET set), as etcd does once it listens."""
    target = os.environ.get("NOTIFY_SOCKET", "")
    if not target:
        return
    address = "\0" + target[1:] if target.startswith("@") else target
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"READY=1", address)
    except OSError as err:
        log.error("failed to notify systemd for readiness", extra={"fields": {"error": str(err)}})


def setup_zap_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ZapProductionFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def refuse_flags(err: FlagError, usage: str) -> int:
    """cobra's refusal: `Error: <message>`, the usage, then main's own copy of the message; exit 1."""
    sys.stderr.write(f"Error: {err}\n{usage}\n{err}")
    sys.stderr.flush()
    return 1


async def serve_gateway(gateway: TCPGateway, listener: socket.socket) -> int:
    """Relay until SIGTERM or SIGINT; the signal that ended it."""
    loop = asyncio.get_running_loop()
    received: asyncio.Future[int] = loop.create_future()

    def on_signal(number: int) -> None:
        if not received.done():
            received.set_result(number)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    await gateway.start(listener)
    notify_systemd()
    number = await received
    await gateway.stop()
    return number


def start_main(argv: list[str]) -> int:
    try:
        flags = parse_start_flags(argv)
    except FlagError as err:
        return refuse_flags(err, START_USAGE)
    if flags.help:
        sys.stdout.write(START_HELP)
        return 0
    setup_zap_logging()
    try:
        remotes, listen_host, listen_port = plan_gateway(flags)
        listener = listen(listen_host, listen_port)
    except GatewayRefusal as refusal:
        stream = sys.stderr if refusal.stderr else sys.stdout
        stream.write(str(refusal) + ("\n" if refusal.stderr else ""))
        stream.flush()
        return 1
    number = run_async(serve_gateway(TCPGateway(remotes, monitor_interval=flags.retry_delay), listener))
    # etcd's gateway has no signal handler: it dies of the signal, and its parent sees exactly that.
    return exit_like_etcd(-number)


def gateway_main(argv: Sequence[str]) -> int:
    """`pyetcd gateway ...`: the `start` subcommand, or the command group's help (for any other word too, as etcd)."""
    args = list(argv)
    if args[:1] == ["start"]:
        return start_main(args[1:])
    for arg in args:
        if arg in ("-h", "--help"):
            break
        if arg.startswith("-"):
            return refuse_flags(FlagError(f"unknown flag: {arg.partition('=')[0]}"), GATEWAY_USAGE)
        # Any other word (a mistyped subcommand too): cobra prints the group's help and exits 0.
    sys.stdout.write(GATEWAY_HELP)
    return 0
