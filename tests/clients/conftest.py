"""One real etcd and one pyetcd for all the client libraries' scenarios, and fresh pairs for snapshots."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.servers import ServerProcess, StartServer, free_port, pyetcd_built

pytestmark = pytest.mark.skipif(not pyetcd_built(), reason="pyetcd's server is not built yet")


@pytest.fixture(scope="package")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServerProcess]]:
    """Shared by every client's scenarios (each writes under a prefix of its own); stopped at the end."""
    base = tmp_path_factory.mktemp("client-servers")
    pair = {binary: ServerProcess(binary=binary, name="n1", data_dir=base / f"{binary}.etcd",
                                  client_port=free_port(), peer_port=free_port())
            for binary in ("etcd", "pyetcd")}
    try:
        for server in pair.values():
            server.start()
        yield pair
    finally:
        for server in pair.values():
            server.stop()


@pytest.fixture
def fresh_servers(start_server: StartServer) -> dict[str, ServerProcess]:
    """A new pair, for checks that look at the whole store (snapshots)."""
    return {"etcd": start_server("etcd"), "pyetcd": start_server("pyetcd")}
