"""Members (real etcd or pyetcd) started with https client and/or peer URLs, and etcdctl over TLS."""

from __future__ import annotations

import socket
import ssl
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers.certs import CertFiles
from tests.helpers.servers import HOST, ServerProcess, free_port, run_etcdctl


@dataclass
class ClientCredentials:
    """What etcdctl is given: --cacert, and --cert/--key when it has a client certificate."""

    cacert: Path | None = None
    cert: CertFiles | None = None
    insecure_skip_verify: bool = False  # for auto-TLS certificates, which no CA vouches for

    def flags(self) -> list[str]:
        flags = [f"--cacert={self.cacert}"] if self.cacert else []
        if self.insecure_skip_verify:
            flags += ["--insecure-transport=false", "--insecure-skip-tls-verify"]
        if self.cert is not None:
            flags += [f"--cert={self.cert.cert}", f"--key={self.cert.key}"]
        return flags


@dataclass
class TLSServerProcess(ServerProcess):
    """A member whose client and peer URLs use the given schemes; etcdctl speaks TLS to https ones."""

    client_scheme: str = "https"
    peer_scheme: str = "https"
    credentials: ClientCredentials = field(default_factory=ClientCredentials)

    @property
    def endpoint(self) -> str:
        return self.client_url

    def etcdctl(self, *args: str, input: str | bytes | None = None,
                timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return run_etcdctl(self.endpoint, *self.credentials.flags(), *args, input=input, timeout=timeout)


def tls_cluster(binary: str, root: Path, size: int, member_args: Sequence[Sequence[str]], *,
                client_scheme: str = "https", peer_scheme: str = "https", peer_host: str = HOST,
                credentials: ClientCredentials | None = None) -> list[TLSServerProcess]:
    """`size` members on fresh ports (not started); member i gets member_args[i] as extra flags.

    Relative paths (unix sockets) resolve in `root`, where every member runs.
    """
    ports = [(free_port(), free_port()) for _ in range(size)]
    initial = ",".join(f"m{i}={peer_scheme}://{peer_host}:{peer}" for i, (_, peer) in enumerate(ports))
    return [TLSServerProcess(binary, f"m{i}", root / f"m{i}.etcd", client, peer, extra_args=list(member_args[i]),
                             initial_cluster=initial, working_dir=root, client_scheme=client_scheme,
                             peer_scheme=peer_scheme, peer_host=peer_host,
                             credentials=credentials or ClientCredentials())
            for i, (client, peer) in enumerate(ports)]


def start_all(members: Sequence[ServerProcess], timeout: float = 60.0) -> None:
    """Start every member, then wait until each answers (a cluster needs a quorum to answer)."""
    for member in members:
        member.start(wait=False)
    for member in members:
        member.wait_healthy(timeout)


def stop_all(members: Sequence[ServerProcess]) -> None:
    for member in members:
        member.stop()


def tls_handshake(port: int, *, ciphers: str | None = None, tls13: bool = False,
                  cert: CertFiles | None = None, alpn: str = "h2") -> str:
    """The cipher a TLS client offering `alpn` settles on with the member, or the handshake's failure
    (`h2` reaches a client port's gRPC side, `http/1.1` its HTTP side)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols([alpn])
    if not tls13:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    if ciphers:
        context.set_ciphers(ciphers)
    if cert is not None:
        context.load_cert_chain(str(cert.cert), str(cert.key))
    try:
        with socket.create_connection((HOST, port), timeout=5) as raw, context.wrap_socket(raw) as tls:
            cipher = tls.cipher()
            return cipher[0] if cipher else ""
    except ssl.SSLError as err:
        return f"refused: {err.reason}"
