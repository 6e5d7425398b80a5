"""The client's address carried to grpc-core through the client port's front process.

gRPC connections on the client port reach grpc-core over a private socket, so grpc-core would see
every client as the front itself. Two ways carry the real address, one per kind of private socket:

- a splice relay to the private unix socket binds its end to an abstract name that holds the
  client's address, which grpc-core reports as the call's peer (`unix-abstract:<name>`);
- a kernel-joined connection to the private TCP port on 127.0.0.1 is known by its local port: the
  front tells the member which client that port stands for before it connects (`client_message`),
  and `RELAYED_CLIENTS` keeps the answer until the front says the connection is over.

The certificate checks and their log lines read it back, so they name the client as etcd names it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

PREFIX = "pyetcd-client-"
PEER_PREFIX = "unix-abstract:" + PREFIX
JOINED_PEER_PREFIX = "ipv4:127.0.0.1:"
CLIENT_TAG = b"a"
"""A control message from the front: this local port on 127.0.0.1 stands for this client."""
GONE_TAG = b"f"
"""A control message from the front: the connection from this local port is over."""


def relay_socket_name(relay_id: str, address: str) -> str:
    """The abstract socket name (leading NUL included) for a relay of the client at `address`
    (Go's `host:port`, `[v6]:port`, or "" for a unix socket client); `relay_id` keeps it unique."""
    return f"\0{PREFIX}{relay_id}/{address}"


def go_address(sockaddr: object) -> str:
    """A socket's peer address as Go prints it: `127.0.0.1:5000`, `[::1]:5000`; "" for a unix socket."""
    if isinstance(sockaddr, tuple) and len(sockaddr) >= 2:
        host, port = str(sockaddr[0]), sockaddr[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return ""


def client_message(port: int, address: str) -> bytes:
    """The front's word that its connection from 127.0.0.1:`port` carries the client at `address`."""
    return CLIENT_TAG + struct.pack("!H", port) + address.encode()


def gone_message(port: int) -> bytes:
    return GONE_TAG + struct.pack("!H", port)


class RelayedClients:
    """The clients behind kernel-joined connections, by the front's local port; filled from the
    fronts' control messages. A port not known yet may be in a message not read yet: `address`
    has every front read its pending messages before it gives up."""

    def __init__(self) -> None:
        self._by_port: dict[int, str] = {}
        self._readers: list[Callable[[], None]] = []

    def heard(self, message: bytes) -> bool:
        """Takes a control message; False if it is not one of these."""
        if len(message) < 3 or message[:1] not in (CLIENT_TAG, GONE_TAG):
            return False
        port = struct.unpack("!H", message[1:3])[0]
        if message[:1] == CLIENT_TAG:
            self._by_port[port] = message[3:].decode(errors="replace")
        else:
            self._by_port.pop(port, None)
        return True

    def add_reader(self, read_pending: Callable[[], None]) -> None:
        self._readers.append(read_pending)

    def remove_reader(self, read_pending: Callable[[], None]) -> None:
        if read_pending in self._readers:
            self._readers.remove(read_pending)

    def address(self, port: int) -> str | None:
        if port not in self._by_port:
            for read_pending in list(self._readers):
                read_pending()
        return self._by_port.get(port)

    def __len__(self) -> int:
        return len(self._by_port)


RELAYED_CLIENTS = RelayedClients()


def relayed_address(peer: str) -> str | None:
    """The client's address in a relayed connection's gRPC peer; None when `peer` is not relayed."""
    if peer.startswith(PEER_PREFIX):
        return peer[len(PEER_PREFIX):].split("/", 1)[1] if "/" in peer else ""
    if peer.startswith(JOINED_PEER_PREFIX) and peer[len(JOINED_PEER_PREFIX):].isdigit():
        return RELAYED_CLIENTS.address(int(peer[len(JOINED_PEER_PREFIX):]))
    return None
