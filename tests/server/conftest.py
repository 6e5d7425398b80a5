"""Runs each etcdctl test against real etcd and against pyetcd (once pyetcd's server exists)."""

from __future__ import annotations

import pytest

from tests.helpers.servers import ServerProcess, StartServer

BINARIES = [pytest.param("etcd", id="etcd"), pytest.param("pyetcd", id="pyetcd")]


@pytest.fixture(scope="module", params=BINARIES)
def server(request: pytest.FixtureRequest, start_module_server: StartServer) -> ServerProcess:
    """One member per binary, shared by a module's tests (each test uses its own keys)."""
    return start_module_server(request.param)
