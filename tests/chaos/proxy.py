"""A fault-injecting TCP proxy in front of every member's peer port.

Each member advertises a proxy port as its peer URL, so every member-to-member
connection passes through here. On loopback all connections come from 127.0.0.1, so
the proxy learns which member opened a connection by finding the process that owns the
connection's client socket (/proc/net/tcp gives the socket's inode, /proc/<pid>/fd the
owner). With the sender known, any direction `src -> dst` can be cut on its own:
majority/minority splits, an isolated leader, one-way cuts.

A cut either blackholes (bytes stop flowing both ways on the connections `src` opened
to `dst`, new ones stall; on healing the held bytes go through, late, as after a real
partition) or resets (those connections are closed at once and new ones are refused).
A delay holds every chunk for a while before passing it on, like a long link.

Bytes flow from the first moment: the opener is looked up on a worker thread meanwhile
(gRPC gives a new connection little time to answer), and only if a cut is in force do
its bytes wait for that answer. The proxy runs its own event loop on a thread, so the
caller's loop never delays Raft's heartbeats; every public method is safe to call from
any thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable, Collection, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

log = logging.getLogger("chaos.proxy")
T = TypeVar("T")

BLACKHOLE = "blackhole"
RESET = "reset"
UNKNOWN_SOURCE = -1
"""A connection whose opener is not a member; it is cut whenever anything into its target is."""

_CHUNK = 64 * 1024


def socket_inode(client_port: int, server_port: int) -> int | None:
    """The inode of the loopback socket bound to `client_port` and connected to `server_port`.

    gRPC opens dual-stack sockets, which the kernel lists in tcp6 with v4-mapped addresses.
    """
    for table_path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table_path, encoding="ascii") as table:
                next(table)
                for line in table:
                    fields = line.split()
                    local, remote, inode = fields[1], fields[2], fields[9]
                    if int(local.rsplit(":", 1)[1], 16) == client_port and \
                            int(remote.rsplit(":", 1)[1], 16) == server_port:
                        return int(inode)
        except OSError:
            continue
    return None


def owner_of_socket(inode: int, pids: Collection[int]) -> int | None:
    """Which of `pids` holds the socket `inode` open."""
    wanted = f"socket:[{inode}]"
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        try:
            names = os.listdir(fd_dir)
        except OSError:
            continue
        for name in names:
            with contextlib.suppress(OSError):
                if os.readlink(f"{fd_dir}/{name}") == wanted:
                    return pid
    return None


@dataclass(eq=False)
class _Link:
    """One proxied connection: the member that opened it (once known), the member it reaches."""

    dst: int
    src: int = UNKNOWN_SOURCE
    identified: asyncio.Event = field(default_factory=asyncio.Event)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    tasks: list[asyncio.Future[None]] = field(default_factory=list)

    def reset(self) -> None:
        for writer in self.writers:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                # Linger 0: close with a RST, as a firewall's reject would.
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        for task in self.tasks:
            task.cancel()


@dataclass(frozen=True, slots=True)
class ProxyStats:
    connections: int
    unidentified: int
    resets: int


class PeerProxy:
    """Proxies for members' peer ports, with per-direction cuts and delays.

    `owners()` maps the pid of every running member process to its member index; it is
    called from a worker thread whenever a connection arrives.
    """

    def __init__(self, owners: Callable[[], Mapping[int, int]], host: str = "127.0.0.1") -> None:
        self.host = host
        self._owners = owners
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="peer-proxy", daemon=True)
        self._servers: dict[int, asyncio.Server] = {}
        self._targets: dict[int, int] = {}
        self._links: set[_Link] = set()
        self._cut: dict[tuple[int, int], str] = {}
        self._delay: dict[tuple[int, int], float] = {}
        self._healed = asyncio.Event()
        self._connections = 0
        self._unidentified = 0
        self._resets = 0
        self._started = False

    # -- life cycle (any thread)

    def start(self) -> None:
        self._thread.start()
        self._started = True

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        with contextlib.suppress(Exception):
            self._call(self._close_all())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> PeerProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    # -- configuration (any thread)

    def listen(self, member: int, target_port: int, listen_port: int = 0) -> int:
        """Forward a port (picked by the kernel unless given) to `member`'s real peer port; returns it."""
        return self._call(self._listen(member, target_port, listen_port))

    def cut(self, pairs: Collection[tuple[int, int]], mode: str = BLACKHOLE) -> None:
        """Cut every direction `(src, dst)` in `pairs`, on top of the cuts in force."""
        if mode not in (BLACKHOLE, RESET):
            raise ValueError(f"unknown cut mode {mode!r}")
        self._call(self._cut_pairs(list(pairs), mode))

    def delay(self, pairs: Collection[tuple[int, int]], seconds: float) -> None:
        """Hold every chunk on the connections of `(src, dst)` for `seconds`, both ways (0 lifts it)."""
        self._call(self._set_delay(list(pairs), seconds))

    def heal(self) -> None:
        """Lift every cut and delay; blackholed connections resume with the bytes they held."""
        self._call(self._heal())

    def cuts(self) -> dict[tuple[int, int], str]:
        """The directions cut right now."""
        return self._call(self._snapshot())

    def stats(self) -> ProxyStats:
        return ProxyStats(self._connections, self._unidentified, self._resets)

    # -- the proxy's own loop

    async def _snapshot(self) -> dict[tuple[int, int], str]:
        return dict(self._cut)

    async def _listen(self, member: int, target_port: int, listen_port: int) -> int:
        self._targets[member] = target_port

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._serve(member, reader, writer)

        server = await asyncio.start_server(accept, self.host, listen_port, reuse_address=True)
        old = self._servers.pop(member, None)
        if old is not None:
            old.close()
        self._servers[member] = server
        port: int = server.sockets[0].getsockname()[1]
        return port

    async def _cut_pairs(self, pairs: list[tuple[int, int]], mode: str) -> None:
        for pair in pairs:
            self._cut[pair] = mode
        self._healed.clear()
        if mode == RESET:
            for link in list(self._links):
                if link.identified.is_set() and self._mode_for(link.src, link.dst) == RESET:
                    self._resets += 1
                    link.reset()

    async def _set_delay(self, pairs: list[tuple[int, int]], seconds: float) -> None:
        for pair in pairs:
            if seconds > 0:
                self._delay[pair] = seconds
            else:
                self._delay.pop(pair, None)

    async def _heal(self) -> None:
        self._cut.clear()
        self._delay.clear()
        self._healed.set()

    def _mode_for(self, src: int, dst: int) -> str | None:
        if src == UNKNOWN_SOURCE:
            modes = [mode for (_, d), mode in self._cut.items() if d == dst]
            return RESET if RESET in modes else (modes[0] if modes else None)
        return self._cut.get((src, dst))

    def _identify(self, client_port: int, server_port: int) -> int:
        """Runs on a worker thread: it reads /proc."""
        owners = self._owners()
        inode = socket_inode(client_port, server_port)
        pid = owner_of_socket(inode, owners) if inode else None
        return owners[pid] if pid is not None else UNKNOWN_SOURCE

    async def _identify_link(self, link: _Link, client_port: int, server_port: int) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(5):  # the opener's socket can take a moment to show up in /proc
            link.src = await loop.run_in_executor(None, self._identify, client_port, server_port)
            if link.src != UNKNOWN_SOURCE:
                break
            await asyncio.sleep(0.01)
        else:
            self._unidentified += 1
            log.warning("connection from port %d to member %d: opener not found", client_port, link.dst)
        link.identified.set()
        if self._mode_for(link.src, link.dst) == RESET:
            self._resets += 1
            link.reset()

    async def _serve(self, dst: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections += 1
        client_port = writer.get_extra_info("peername")[1]
        server_port = writer.get_extra_info("sockname")[1]
        link = _Link(dst, writers=[writer])
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self._targets[dst])
        except OSError:  # the member is down: refuse as it would
            link.reset()
            return
        link.writers.append(up_writer)
        self._links.add(link)
        link.tasks = [asyncio.ensure_future(self._pump(link, reader, up_writer)),
                      asyncio.ensure_future(self._pump(link, up_reader, writer)),
                      asyncio.ensure_future(self._identify_link(link, client_port, server_port))]
        try:
            await asyncio.gather(*link.tasks[:2], return_exceptions=True)
        finally:
            link.tasks[2].cancel()
            self._links.discard(link)
            for w in link.writers:
                w.transport.abort()

    async def _pump(self, link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read one direction of a link; a cut holds the bytes, a delay stamps them for later."""
        loop = asyncio.get_running_loop()
        line: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        sender = asyncio.ensure_future(self._deliver(line, writer))
        try:
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    break
                if (self._cut or self._delay) and not link.identified.is_set():
                    await link.identified.wait()  # a fault may concern this link: learn whose it is first
                while self._mode_for(link.src, link.dst) is not None:
                    await self._healed.wait()  # blackholed: hold the bytes until the cut is lifted
                line.put_nowait((loop.time() + self._delay.get((link.src, link.dst), 0.0), data))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            sender.cancel()
            # One side closed: close both, as a broken connection does.
            for task in link.tasks[:2]:
                if task is not asyncio.current_task():
                    task.cancel()

    @staticmethod
    async def _deliver(line: asyncio.Queue[tuple[float, bytes]], writer: asyncio.StreamWriter) -> None:
        """Write chunks in order, each no earlier than its stamp: a delay line, not a throttle."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(OSError):
            while True:
                due, data = await line.get()
                if due > loop.time():
                    await asyncio.sleep(due - loop.time())
                writer.write(data)
                await writer.drain()

    async def _close_all(self) -> None:
        for server in self._servers.values():
            server.close()
        self._servers.clear()
        for link in list(self._links):
            link.reset()
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
