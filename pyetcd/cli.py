"""The `pyetcd` command: a server started with etcd's flags, `grpc-proxy start`, `snapshot restore|status`
and `migrate`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from pyetcd import SERVER_VERSION, __version__
from pyetcd.config import ConfigError, FatalConfigError, FlagSyntaxError, ServerConfig, parse_server_args
from pyetcd.logs import NOTICE, LogOutputError, setup_logging
from pyetcd.process_run import exit_like_etcd, run_async
from pyetcd.tlsconfig import CipherSuiteError, apply_cipher_suites

if TYPE_CHECKING:  # the server is imported only when one is started, to keep --help and --version fast
    from pyetcd.server import EtcdServer

log = logging.getLogger("pyetcd")

GO_SIGNAL_NAMES = {signal.SIGTERM: "terminated", signal.SIGINT: "interrupt"}
"""How Go names the signals a member stops on, for etcd's "received ... signal" line."""


def print_help() -> None:
    from pyetcd.help import help_text

    print(help_text(), end="")


def print_version() -> None:
    print(f"pyetcd Version: {__version__}")
    print(f"etcd API compatible with: {SERVER_VERSION}")
    print(f"Python Version: {sys.version.split()[0]}")


def fatal(message: str, *, level: str = "C", package: str = "etcdmain") -> int:
    """Report a start-up failure the way etcdmain does, and give the exit status etcd gives."""
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")
    print(f"{stamp} {level} | {package}: {message}", file=sys.stderr)
    return 1


def refuse_configuration(err: ConfigError) -> int:
    """etcd's three ways to refuse a configuration, with their words and exit statuses."""
    if isinstance(err, FlagSyntaxError):  # Go's flag package: the message, usage, exit 2
        print(str(err), file=sys.stderr)
        print("Try 'pyetcd --help' for more information.", file=sys.stderr)
        return 2
    if isinstance(err, FatalConfigError):
        return fatal(str(err), package=err.package)
    return fatal(f"error verifying flags, {err}. See 'pyetcd --help'.", level="E")


class ClientListener(Protocol):
    """Something that serves clients from a member once it is ready: the gRPC API, an HTTP side."""

    async def start(self, etcd: EtcdServer) -> None: ...

    async def stop(self) -> None: ...


async def run_server(config: ServerConfig, listeners: Sequence[ClientListener] = ()) -> int:
    """Build the member, wire its peer service and client listeners, and serve until a signal or a fatal
    error; the exit status (1 when the member failed, -signum when a signal stopped it). The gRPC API is
    always served; `listeners` start after it."""
    from pyetcd import etcd_lines
    from pyetcd.api.register import GrpcClientApi
    from pyetcd.datadir import create_files_private
    from pyetcd.errors import StartupError
    from pyetcd.gc_policy import freeze_startup_heap
    from pyetcd.http.wiring import HttpWiring
    from pyetcd.peer_service import add_peer_service
    from pyetcd.server import EtcdServer
    from pyetcd.tlsconfig import is_secure_url

    create_files_private()
    server = EtcdServer(config)
    server.add_peer_service(lambda peer_server: add_peer_service(peer_server, server))
    received: list[signal.Signals] = []

    def on_signal(signum: signal.Signals) -> None:
        if not received:
            logging.getLogger("pyetcd.pkg/osutil").log(NOTICE, "received %s signal, shutting down...",
                                                       GO_SIGNAL_NAMES[signum])
        received.append(signum)
        server.stopped.set()

    http = HttpWiring(server)
    await http.start()
    serving: list[ClientListener] = [GrpcClientApi(config, front=http.client_front, stats=http.grpc_stats),
                                     *listeners]
    if config.serving_processes > 1 and http.client_front is not None:
        from pyetcd.serving.supervisor import ServingProcesses

        # Started before the gRPC API, whose client port then relays gRPC connections to them.
        serving_processes = ServingProcesses(config, http.client_front.grpc_address, http.grpc_stats)
        http.client_front.relay_grpc_to(serving_processes.socket_names, serving_processes.tls_socket_names)
        serving.insert(0, serving_processes)
    loop = asyncio.get_running_loop()
    for signum in GO_SIGNAL_NAMES:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await server.start()
        if await _ready_or_stopped(server):
            freeze_startup_heap()  # the store's key index and the start-up objects: see gc_policy
            for listener in serving:
                await listener.start(server)
            etcd_lines.serving_clients(config.listen_client_urls,
                                       lambda url: is_secure_url(url) and not server.client_tls.empty)
            await http.serve_metrics_urls()
    except StartupError as err:
        await _stop(server, serving)
        await http.stop()
        return fatal(str(err), package=getattr(err, "package", "etcdmain"))
    await server.stopped.wait()
    if not received:
        log.info("shutting down: %s", server.stop_reason or "stopped")
    await _stop(server, serving)
    await http.stop()
    if server.failed:
        return 1
    return -received[0] if received else 0


async def _ready_or_stopped(server: EtcdServer) -> bool:
    """Wait until the member may serve clients (True) or has stopped before that (False)."""
    waits = [asyncio.create_task(server.ready.wait()), asyncio.create_task(server.stopped.wait())]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for wait in waits:
        wait.cancel()
    return not server.stopped.is_set()


async def _stop(server: EtcdServer, listeners: Sequence[ClientListener]) -> None:
    for listener in listeners:
        await listener.stop()
    await server.stop()


def proxy_main(argv: Sequence[str]) -> int:
    from pyetcd.proxy import add_proxy_arguments, proxy_config_from_args

    parser = argparse.ArgumentParser(prog="pyetcd grpc-proxy start",
                                     description="Start the stateless etcd v3 gRPC L7 reverse proxy.")
    add_proxy_arguments(parser)
    args = parser.parse_args(list(argv))
    try:
        config = proxy_config_from_args(args)
        apply_cipher_suites(config.listen_cipher_suites)  # before the proxy server (and gRPC) loads
    except (ConfigError, CipherSuiteError) as err:
        print(err, file=sys.stderr)  # etcd's grpc-proxy prints its start-up refusals bare, and exits 1
        return 1
    from pyetcd.proxy import serve_proxy

    setup_logging("debug" if config.debug else "info")

    async def main() -> int:
        stop = asyncio.Event()
        received: list[signal.Signals] = []

        def on_signal(signum: signal.Signals) -> None:
            received.append(signum)
            stop.set()

        loop = asyncio.get_running_loop()
        for signum in GO_SIGNAL_NAMES:
            loop.add_signal_handler(signum, on_signal, signum)
        await serve_proxy(config, stop=stop)
        # etcd's grpc-proxy leaves the signals to Go's default action: it ends by the signal, silently.
        return -received[0] if received else 0

    return exit_like_etcd(run_async(main()))


EXIT_BAD_ARGS = 128
"""etcdctl's exit status for a wrong number of arguments."""


def snapshot_main(argv: Sequence[str]) -> int:
    from pyetcd.restore import add_restore_arguments, restore_snapshot
    from pyetcd.snapshot_status import WRITE_OUT_FORMATS, UnsupportedOutput, format_status, snapshot_status

    parser = argparse.ArgumentParser(prog="pyetcd snapshot", description="Snapshot tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    restore = sub.add_parser("restore", help="Restore a snapshot file into a new data directory.")
    add_restore_arguments(restore)
    status = sub.add_parser("status", help="Print the hash, revision, key count and size of a snapshot file.")
    status.add_argument("filename", nargs="*", help="The snapshot file.")
    status.add_argument("-w", "--write-out", default="simple",
                        help=f"Output format ({', '.join(WRITE_OUT_FORMATS)}).")
    args = parser.parse_args(list(argv))
    if len(args.filename) != 1:
        print(f"Error: snapshot {args.command} requires exactly one argument", file=sys.stderr)
        return EXIT_BAD_ARGS
    from pyetcd.datadir import create_files_private

    create_files_private()  # restore makes a data dir
    try:
        if args.command == "status":
            sys.stdout.write(format_status(snapshot_status(args.filename[0]), args.write_out))
        else:
            restore_snapshot(args)
    except UnsupportedOutput as err:
        print(f"Error: {err}", file=sys.stderr)
        return err.exit_status
    except (ConfigError, OSError, ValueError) as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    return 0


def migrate_main(argv: Sequence[str]) -> int:
    from pyetcd.migrate import add_migrate_arguments, migrate

    parser = argparse.ArgumentParser(prog="pyetcd migrate",
                                     description="Make a pyetcd data directory from a stopped etcd member's.")
    add_migrate_arguments(parser)
    args = parser.parse_args(list(argv))
    from pyetcd.datadir import create_files_private

    create_files_private()  # the data dir it makes is private, as a member's own
    try:
        migrate(args)
    except (ConfigError, OSError, ValueError) as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:2] == ["grpc-proxy", "start"]:
        return proxy_main(args[2:])
    if args[:1] == ["snapshot"]:
        return snapshot_main(args[1:])
    if args[:1] == ["migrate"]:
        return migrate_main(args[1:])
    if args[:1] == ["gateway"]:
        from pyetcd.proxy.gateway_command import gateway_main
        return gateway_main(args[1:])
    if args[:1] == ["sim"]:
        from raft.sim.__main__ import main as sim_main

        return sim_main(args[1:])  # `pyetcd sim …` is `python -m raft.sim …`
    try:
        config = parse_server_args(args, on_version=print_version, on_help=print_help, refuse_shadowed_env=True)
    except ConfigError as err:
        return refuse_configuration(err)
    if config is None:
        return 0
    try:
        setup_logging(config.log_level, config.logger, config.log_outputs)
    except LogOutputError as err:
        return fatal(str(err))
    for level, notice in config.notices:
        logging.getLogger("pyetcd.flags").log(level, "%s", notice)
    try:
        apply_cipher_suites(config.cipher_suites)  # before the server (and so gRPC) is imported
    except CipherSuiteError as err:
        return fatal(str(err))
    log.info("pyetcd %s starting member %s (data dir %s)", __version__, config.name, config.data_dir)
    return exit_like_etcd(run_async(run_server(config)))


if __name__ == "__main__":
    sys.exit(main())
