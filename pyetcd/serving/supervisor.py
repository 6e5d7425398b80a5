"""The core's side of --serving-processes: the batch socket, and N serving processes kept running.

Started before the gRPC API (so the client port's front relays to processes that already listen),
it spawns each serving process with the member's settings, waits until each accepts connections,
and restarts any that exits while the member serves: the client port's front sends new connections
to the others meanwhile. Stopped before the gRPC API; the serving processes also die with the core
on their own (process.die_with_parent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from typing import Protocol

from pyetcd.api.server_api import EtcdServerApi
from pyetcd.api.stats import GrpcStats
from pyetcd.config import ServerConfig
from pyetcd.errors import StartupError
from pyetcd.serving.batch_service import BatchService
from pyetcd.serving.settings import ServingSettings
from pyetcd.tlsconfig import TLSInfo, is_secure_url

log = logging.getLogger("pyetcd.serving")

READY_TIMEOUT_S = 60.0
READY_POLL_S = 0.05
RESTART_DELAY_S = 0.2
MAX_RESTART_DELAY_S = 5.0
STEADY_S = 10.0
"""A serving process that ran this long before exiting is restarted after the shortest delay again."""
STOP_GRACE_S = 5.0


class ServedTlsMember(EtcdServerApi, Protocol):
    """The member as the supervisor needs it: the servicers' server and its client TLS settings."""

    @property
    def client_tls(self) -> TLSInfo: ...


def socket_connectable(name: str) -> bool:
    """Whether something accepts on the abstract unix socket `name` (without the leading NUL)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect("\0" + name)
    except OSError:
        return False
    finally:
        probe.close()
    return True


class ServingProcess:
    """One running serving process, started with posix_spawn: unlike fork, it runs no fork handlers in a
    member whose gRPC threads are busy (grpc's handlers, skipped or not, can crash the child)."""

    def __init__(self, settings: ServingSettings) -> None:
        self.pid = os.posix_spawn(sys.executable, [sys.executable, "-m", "pyetcd.serving", settings.to_json()],
                                  os.environ, file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)])
        self.exited: asyncio.Task[int] = asyncio.create_task(self._reap(), name=f"reap-{self.pid}")
        """Ends with the exit status (-signal when a signal ended it) once the process has exited."""

    def signal(self, signum: int) -> None:
        if not self.exited.done():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    async def _reap(self) -> int:
        loop = asyncio.get_running_loop()
        pidfd = os.pidfd_open(self.pid)
        readable: asyncio.Future[None] = loop.create_future()

        def on_exit() -> None:
            if not readable.done():
                readable.set_result(None)

        loop.add_reader(pidfd, on_exit)
        try:
            await readable  # a process's pidfd becomes readable when it exits
        finally:
            loop.remove_reader(pidfd)
            os.close(pidfd)
        _, status = os.waitpid(self.pid, 0)
        return os.waitstatus_to_exitcode(status)


class ServingProcesses:
    """N serving processes for one member: a client listener that runs beside the gRPC API."""

    def __init__(self, config: ServerConfig, core_grpc_address: str, stats: GrpcStats | None = None) -> None:
        self.config = config
        self.count = config.serving_processes
        self._core_grpc_address = core_grpc_address
        self._stats = stats
        prefix = f"pyetcd-serving-{os.getpid()}"
        self._batch_socket = f"{prefix}-batches"
        self.socket_names = [f"{prefix}-{index}" for index in range(1, self.count + 1)]
        """Where the client port's front relays plain gRPC connections, one name per serving process."""
        self.serves_tls = any(is_secure_url(url) for url in config.listen_client_urls)
        self.tls_socket_names = [f"{name}-tls" for name in self.socket_names] if self.serves_tls else []
        """The same for TLS connections (none without a TLS client URL)."""
        self._batches: BatchService | None = None
        self._processes: dict[int, ServingProcess] = {}
        self._keepers: list[asyncio.Task[None]] = []
        self._stopping = False

    async def start(self, etcd: ServedTlsMember) -> None:
        self._batches = BatchService(etcd, self._stats)
        await self._batches.listen("\0" + self._batch_socket)
        tls = etcd.client_tls if self.serves_tls else TLSInfo()
        settings = [self._settings(index, tls) for index in range(1, self.count + 1)]
        for one in settings:
            await self._spawn(one)
        for one in settings:
            await self._wait_ready(one)
        self._keepers = [asyncio.create_task(self._keep_running(one), name=f"serving-{one.index}")
                         for one in settings]
        log.info("serving client gRPC from %d serving processes", self.count)

    async def stop(self) -> None:
        self._stopping = True
        for keeper in self._keepers:
            keeper.cancel()
        await asyncio.gather(*self._keepers, return_exceptions=True)
        for process in self._processes.values():
            process.signal(signal.SIGTERM)
        for process in self._processes.values():
            try:
                await asyncio.wait_for(asyncio.shield(process.exited), STOP_GRACE_S)
            except TimeoutError:
                process.signal(signal.SIGKILL)
                await process.exited
        self._processes.clear()
        if self._batches is not None:
            await self._batches.close()

    def _settings(self, index: int, tls: TLSInfo) -> ServingSettings:
        config = self.config
        return ServingSettings(
            index=index, core_pid=os.getpid(), core_grpc_address=self._core_grpc_address,
            core_batch_socket=self._batch_socket, listen_socket=self.socket_names[index - 1],
            listen_tls_socket=self.tls_socket_names[index - 1] if self.serves_tls else "", tls=tls,
            max_request_bytes=config.max_request_bytes, grpc_keepalive_min_time_s=config.grpc_keepalive_min_time_s,
            grpc_keepalive_interval_s=config.grpc_keepalive_interval_s,
            grpc_keepalive_timeout_s=config.grpc_keepalive_timeout_s, log_level=config.log_level,
            logger=config.logger, log_outputs=config.log_outputs)

    async def _spawn(self, settings: ServingSettings) -> None:
        self._processes[settings.index] = ServingProcess(settings)

    async def _wait_ready(self, settings: ServingSettings) -> None:
        process = self._processes[settings.index]
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not socket_connectable(settings.listen_socket):
            if process.exited.done():
                raise StartupError(f"serving process {settings.index} exited with status {process.exited.result()} "
                                   "before serving")
            if time.monotonic() > deadline:
                raise StartupError(f"serving process {settings.index} did not start serving in "
                                   f"{READY_TIMEOUT_S:.0f}s")
            await asyncio.sleep(READY_POLL_S)

    async def _keep_running(self, settings: ServingSettings) -> None:
        """Restart this serving process whenever it exits, until the member stops."""
        delay = RESTART_DELAY_S
        while True:
            started = time.monotonic()
            status = await asyncio.shield(self._processes[settings.index].exited)  # stop() awaits it too
            if self._stopping:
                return
            # One that keeps crashing at start is retried ever more slowly, not in a tight loop.
            delay = RESTART_DELAY_S if time.monotonic() - started > STEADY_S else min(delay * 2, MAX_RESTART_DELAY_S)
            log.warning("serving process %d exited with status %d; starting it again", settings.index, status)
            await asyncio.sleep(delay)
            try:
                await self._spawn(settings)
                await self._wait_ready(settings)
            except (StartupError, OSError) as err:
                log.error("serving process %d: %s", settings.index, err)
