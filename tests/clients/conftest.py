"""One real etcd and one pyetcd for all the client libraries' scenarios, and fresh pairs for snapshots."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.clients.side_by_side import enable_auth, start_pair
from tests.helpers.servers import ServerProcess, StartServer, free_port


@pytest.fixture(scope="package")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServerProcess]]:
    """Shared by every client's scenarios (each writes under a prefix of its own); stopped at the end."""
    base = tmp_path_factory.mktemp("client-servers")
    pair = {binary: ServerProcess(binary=binary, name="n1", data_dir=base / f"{binary}.etcd",
                                  client_port=free_port(), peer_port=free_port())
            for binary in ("etcd", "pyetcd")}
    try:
        start_pair(pair)
        yield pair
    finally:
        for server in pair.values():
            server.stop()


@pytest.fixture(scope="package")
def auth_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServerProcess]]:
    """A pair with auth on: root (password rootpw) and alice (alicepw), who may only read /auth/."""
    base = tmp_path_factory.mktemp("client-auth-servers")
    pair = {binary: ServerProcess(binary=binary, name="n1", data_dir=base / f"{binary}.etcd",
                                  client_port=free_port(), peer_port=free_port())
            for binary in ("etcd", "pyetcd")}
    try:
        start_pair(pair)
        enable_auth(pair)
        yield pair
    finally:
        for server in pair.values():
            server.stop()


@pytest.fixture
def fresh_servers(start_server: StartServer) -> dict[str, ServerProcess]:
    """A new pair, for checks that look at the whole store (snapshots)."""
    pair = {binary: start_server(binary, wait=False) for binary in ("etcd", "pyetcd")}
    for server in pair.values():
        server.wait_healthy()
    return pair
