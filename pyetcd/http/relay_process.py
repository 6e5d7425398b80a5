"""The client port's front process: accepts, tells gRPC from HTTP/1.1, and keeps gRPC's bytes away
from the member's process.

Started by front.ClientPortFront with the bound listening sockets and a control socket. For
each connection it peeks at the first bytes: the HTTP/2 preface is joined to grpc-core's
private unix socket by a kernel splice relay running here, in its own process and its own
interpreter lock; anything else is handed to the member over the control socket (SCM_RIGHTS)
for the HTTP side. It exits when the member closes the control socket (or dies).

Run as `python -m pyetcd.http.relay_process GRPC_SOCKET_NAME CONTROL_FD LISTENER_FD...`.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import sys
import time

from pyetcd.http.splice_relay import SpliceRelay

HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
PEEK_BYTES = 4
"""Enough to tell "PRI " from "GET ", "POST", "PUT ", ..."""
PARTIAL_RETRY_S = 0.002


def is_grpc(first: bytes) -> bool:
    return HTTP2_PREFACE.startswith(first)


class FrontLoop:
    """One selector over the listeners, the control socket and connections not yet told apart."""

    def __init__(self, grpc_socket_name: str, control: socket.socket, listeners: list[socket.socket]) -> None:
        self._grpc_socket_name = grpc_socket_name
        self._control = control
        self._selector = selectors.DefaultSelector()
        self._partial: list[socket.socket] = []
        for listener in listeners:
            listener.setblocking(False)
            self._selector.register(listener, selectors.EVENT_READ, "accept")
        self._selector.register(control, selectors.EVENT_READ, "control")

    def run(self) -> None:
        while True:
            timeout = PARTIAL_RETRY_S if self._partial else None
            for key, _ in self._selector.select(timeout):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                if key.data == "control":
                    if not sock.recv(1):
                        return  # the member is gone
                elif key.data == "accept":
                    self._accept(sock)
                else:
                    self._route(sock)
            partial, self._partial = self._partial, []
            for conn in partial:
                self._selector.register(conn, selectors.EVENT_READ, "peek")

    def _accept(self, listener: socket.socket) -> None:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            return
        except OSError:
            time.sleep(0.05)  # out of descriptors: let the kernel queue wait rather than spin
            return
        conn.setblocking(False)
        if conn.family != socket.AF_UNIX:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._selector.register(conn, selectors.EVENT_READ, "peek")

    def _route(self, conn: socket.socket) -> None:
        self._selector.unregister(conn)
        try:
            first = conn.recv(PEEK_BYTES, socket.MSG_PEEK)
        except OSError:
            conn.close()
            return
        if not first:
            conn.close()
        elif len(first) < PEEK_BYTES and is_grpc(first):
            self._partial.append(conn)  # a prefix of the preface so far: look again shortly
        elif is_grpc(first):
            self._relay_to_grpc(conn)
        else:
            with contextlib.suppress(OSError):
                socket.send_fds(self._control, [b"h"], [conn.fileno()])
            conn.close()

    def _relay_to_grpc(self, conn: socket.socket) -> None:
        backend = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            backend.connect(self._grpc_socket_name)
        except OSError:
            backend.close()
            conn.close()
            return
        SpliceRelay(conn, backend).start()


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the member's Ctrl-C is the member's to handle
    grpc_socket_name = "\0" + argv[0]
    control = socket.socket(fileno=int(argv[1]))
    listeners = [socket.socket(fileno=int(fd)) for fd in argv[2:]]
    FrontLoop(grpc_socket_name, control, listeners).run()
    os._exit(0)  # relays still running die with the process, as the member's connections do


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
