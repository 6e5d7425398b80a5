"""Kernel-side byte relays for many connections on one thread: non-blocking os.splice through a pipe
per direction, driven by one edge-triggered epoll.

Where the front process cannot have the kernel join two sockets (sockmap.py), it relays them here.
A chunk costs two splices and no copy through Python; a wake-up serves every connection that has
bytes, instead of a thread per direction each taking the interpreter lock for its own chunk.

Each direction moves source -> pipe -> sink: what the pipe holds goes out first (partial splices and
EAGAIN on the sink leave the rest there), then the source is read again. End of stream becomes
shutdown(SHUT_WR) on the sink once the pipe is empty. When both directions have ended, or either
socket fails (a reset), both sockets and the pipes close.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import socket
from collections.abc import Callable, Iterable

CHUNK_BYTES = 1 << 20
PIPE_BYTES = 1 << 20
"""Asked of F_SETPIPE_SZ (the default pipe holds 64 KiB); what the kernel grants is fine too."""
ROUNDS_PER_TURN = 16
"""Chunks one direction may move before the others get their turn."""
SPLICE_FLAGS = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK


class Direction:
    """source -> pipe -> sink, and what the pipe still holds."""

    def __init__(self, source: socket.socket, sink: socket.socket) -> None:
        self.source, self.sink = source, sink
        self.read_end, self.write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        with contextlib.suppress(OSError):
            fcntl.fcntl(self.write_end, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        self.in_pipe = 0
        self.source_ended = False
        self.done = False
        self.broken = False
        """A socket of the connection failed (a reset): the other direction cannot go on either."""

    def pump(self) -> bool:
        """Moves what can move now; True if it stopped only for its turn (more may be ready)."""
        if self.done:
            return False
        try:
            for _ in range(ROUNDS_PER_TURN):
                while self.in_pipe:
                    try:
                        self.in_pipe -= os.splice(self.read_end, self.sink.fileno(), self.in_pipe, flags=SPLICE_FLAGS)
                    except BlockingIOError:
                        return False  # the sink is full: its EPOLLOUT brings us back
                if self.source_ended:
                    self._end()
                    return False
                try:
                    moved = os.splice(self.source.fileno(), self.write_end, CHUNK_BYTES, flags=SPLICE_FLAGS)
                except BlockingIOError:
                    return False  # nothing to read: the source's EPOLLIN brings us back
                if moved == 0:
                    self.source_ended = True
                self.in_pipe += moved
        except OSError:
            self.broken = True  # a reset: the connection ends both ways, as a relay's peer would see it
            self._end()
            return False
        return True

    def _end(self) -> None:
        self.done = True
        with contextlib.suppress(OSError):
            self.sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        os.close(self.read_end)
        os.close(self.write_end)


class Relay:
    """Both directions of one connection."""

    def __init__(self, a: socket.socket, b: socket.socket, on_end: Callable[[], None] | None) -> None:
        self.sockets = (a, b)
        self.fds = (a.fileno(), b.fileno())
        self.directions = (Direction(a, b), Direction(b, a))
        self.on_end = on_end

    @property
    def over(self) -> bool:
        return all(direction.done for direction in self.directions) or \
            any(direction.broken for direction in self.directions)


class SpliceLoop:
    """Relays connections on the caller's thread: the front's loop waits on `fileno()`, calls
    `handle_events` when it is readable, and `retry` after at most `timeout()` seconds."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._relays: dict[int, Relay] = {}
        self._unfinished: set[Relay] = set()
        """Relays that stopped for their turn, not for want of bytes or room."""

    def fileno(self) -> int:
        return self._epoll.fileno()

    def __len__(self) -> int:
        return len(self._relays) // 2

    def join(self, a: socket.socket, b: socket.socket, on_end: Callable[[], None] | None = None) -> None:
        """Relays `a` <-> `b` from now on; both are this loop's, closed when both directions end."""
        a.setblocking(False)
        b.setblocking(False)
        relay = Relay(a, b, on_end)
        for fd in relay.fds:
            self._relays[fd] = relay
            self._epoll.register(fd, select.EPOLLIN | select.EPOLLOUT | select.EPOLLRDHUP | select.EPOLLET)
        self._pump(relay)  # bytes may be waiting already (the preface the front peeked at)

    def timeout(self) -> float | None:
        return 0.0 if self._unfinished else None

    def handle_events(self) -> None:
        ready: dict[Relay, set[Direction]] = {}
        for fd, events in self._epoll.poll(0):
            relay = self._relays.get(fd)
            if relay is None:
                continue
            index = relay.fds.index(fd)
            wanted = ready.setdefault(relay, set())
            if events & (select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR):
                wanted.add(relay.directions[index])  # bytes, an end or an error to read from here
            if events & (select.EPOLLOUT | select.EPOLLHUP | select.EPOLLERR):
                wanted.add(relay.directions[1 - index])  # room to write what waits for this socket
        for relay, directions in ready.items():
            self._pump(relay, directions)

    def retry(self) -> None:
        unfinished, self._unfinished = self._unfinished, set()
        for relay in unfinished:
            if relay.fds[0] in self._relays:
                self._pump(relay)

    def close(self) -> None:
        for relay in set(self._relays.values()):
            self._end(relay)
        self._epoll.close()

    def _pump(self, relay: Relay, directions: Iterable[Direction] | None = None) -> None:
        more = False
        for direction in relay.directions if directions is None else directions:
            more = direction.pump() or more
        if relay.over:
            self._end(relay)
        elif more:
            self._unfinished.add(relay)

    def _end(self, relay: Relay) -> None:
        self._unfinished.discard(relay)
        for fd in relay.fds:
            if self._relays.get(fd) is relay:
                del self._relays[fd]
                with contextlib.suppress(OSError):
                    self._epoll.unregister(fd)
        for sock in relay.sockets:
            sock.close()
        for direction in relay.directions:
            direction.close()
        if relay.on_end is not None:
            relay.on_end()

