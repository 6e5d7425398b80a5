"""Kernel-side byte relay between two connected sockets: os.splice through a pipe, one thread per direction.

grpcio cannot adopt a socket accepted elsewhere (its server only binds its own ports), so a
gRPC connection that arrived on the shared client port is joined to grpc-core's private unix
socket here. splice(2) moves the bytes inside the kernel; the threads only loop around it, and
hold the GIL for a few bytecodes per chunk, never for the bytes themselves.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable

CHUNK_BYTES = 1 << 20


class SpliceRelay:
    """Relays `a` <-> `b` until both directions reach end of stream, then closes both sockets."""

    def __init__(self, a: socket.socket, b: socket.socket,
                 on_closed: Callable[[SpliceRelay], None] | None = None) -> None:
        self._on_closed = on_closed
        a.setblocking(True)
        b.setblocking(True)
        self._a, self._b = a, b
        self._lock = threading.Lock()
        self._open_directions = 2
        self._threads = [threading.Thread(target=self._pump, args=(a, b), daemon=True, name="grpc-relay"),
                         threading.Thread(target=self._pump, args=(b, a), daemon=True, name="grpc-relay")]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def close(self) -> None:
        """Cut both directions now (server shut-down); the threads then finish by themselves."""
        for sock in (self._a, self._b):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        read_end, write_end = os.pipe()
        src, dst = source.fileno(), sink.fileno()
        try:
            while True:
                moved = os.splice(src, write_end, CHUNK_BYTES, flags=os.SPLICE_F_MOVE)
                if moved == 0:
                    break
                while moved:
                    moved -= os.splice(read_end, dst, moved, flags=os.SPLICE_F_MOVE)
        except OSError:
            pass  # a reset or a shut-down socket ends this direction like an end of stream
        finally:
            os.close(read_end)
            os.close(write_end)
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)
            self._direction_done()

    def _direction_done(self) -> None:
        with self._lock:
            self._open_directions -= 1
            last = self._open_directions == 0
        if last:
            self._a.close()
            self._b.close()
            if self._on_closed is not None:
                self._on_closed(self)
