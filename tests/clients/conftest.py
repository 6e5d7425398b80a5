"""One real etcd and one pyetcd per test module, for the client libraries to be driven against both."""

from __future__ import annotations

import pytest

from tests.helpers.servers import ServerProcess, StartServer, pyetcd_built

pytestmark = pytest.mark.skipif(not pyetcd_built(), reason="pyetcd's server is not built yet")


@pytest.fixture(scope="module")
def servers(start_module_server: StartServer) -> dict[str, ServerProcess]:
    """Shared by a module's tests; every scenario writes under a prefix of its own."""
    return {"etcd": start_module_server("etcd"), "pyetcd": start_module_server("pyetcd")}


@pytest.fixture
def fresh_servers(start_server: StartServer) -> dict[str, ServerProcess]:
    """A new pair, for checks that look at the whole store (snapshots)."""
    return {"etcd": start_server("etcd"), "pyetcd": start_server("pyetcd")}
