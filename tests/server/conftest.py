"""Runs each etcdctl test against real etcd and against pyetcd (once pyetcd's server exists)."""

from __future__ import annotations

import pytest

from tests.helpers.servers import ServerProcess, StartServer, pyetcd_built

PYETCD_PENDING = pytest.mark.skipif(not pyetcd_built(), reason="pyetcd's server is not built yet")
BINARIES = [pytest.param("etcd", id="etcd"), pytest.param("pyetcd", id="pyetcd", marks=PYETCD_PENDING)]


@pytest.fixture(scope="module", params=BINARIES)
def server(request: pytest.FixtureRequest, start_module_server: StartServer) -> ServerProcess:
    """One member per binary, shared by a module's tests (each test uses its own keys)."""
    return start_module_server(request.param)
