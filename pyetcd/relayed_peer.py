"""The client's address carried to grpc-core through the client port's relay, in the relay socket's name.

gRPC connections on the client port reach grpc-core over a private unix socket, so grpc-core would
see every client as `unix:`. The relay binds its end to an abstract name that holds the client's
address, which grpc-core reports as the call's peer (`unix-abstract:<name>`); the certificate
checks and their log lines read it back, so they name the client as etcd names it.
"""

from __future__ import annotations

PREFIX = "pyetcd-client-"
PEER_PREFIX = "unix-abstract:" + PREFIX


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


def relayed_address(peer: str) -> str | None:
    """The client's address in a relayed connection's gRPC peer; None when `peer` is not relayed."""
    if not peer.startswith(PEER_PREFIX):
        return None
    return peer[len(PEER_PREFIX):].split("/", 1)[1] if "/" in peer else ""
