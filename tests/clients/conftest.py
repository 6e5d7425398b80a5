"""One real etcd and one pyetcd for all the client libraries' scenarios, and fresh pairs for snapshots."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.clients.side_by_side import start_pair
from tests.helpers.servers import REPO, ServerProcess, StartServer, free_port, pyetcd_built

pytestmark = pytest.mark.skipif(not pyetcd_built(), reason="pyetcd's server is not built yet")


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


# Authentication arrives with issue 11; until pyetcd has it, the auth scenarios have nothing to compare.
NEEDS_AUTH = pytest.mark.skipif(not (REPO / "pyetcd" / "auth").is_dir(),
                                reason="pyetcd has no authentication yet (issue 11)")

# The users and roles every client's auth scenario finds, made with the real etcdctl on both servers.
AUTH_SETUP = (
    ("user", "add", "root:rootpw"),
    ("role", "add", "reader"),
    ("role", "grant-permission", "reader", "read", "/auth/", "--prefix=true"),
    ("user", "add", "alice:alicepw"),
    ("user", "grant-role", "alice", "reader"),
    ("put", "/auth/key", "v1"),
    ("auth", "enable"),
)


@pytest.fixture(scope="package")
def auth_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServerProcess]]:
    """A pair with auth on: root (password rootpw) and alice (alicepw), who may only read /auth/."""
    base = tmp_path_factory.mktemp("client-auth-servers")
    pair = {binary: ServerProcess(binary=binary, name="n1", data_dir=base / f"{binary}.etcd",
                                  client_port=free_port(), peer_port=free_port())
            for binary in ("etcd", "pyetcd")}
    try:
        start_pair(pair)
        for server in pair.values():
            for command in AUTH_SETUP:
                result = server.etcdctl(*command)
                assert result.returncode == 0, f"{server.binary}: etcdctl {' '.join(command)}: {result.stderr}"
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
