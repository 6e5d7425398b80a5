"""Fixtures that start server processes; every process a test starts is stopped at teardown."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.helpers.servers import ServerProcess, StartServer, free_port


def _server_starter(base_dir: Path) -> tuple[StartServer, list[ServerProcess]]:
    started: list[ServerProcess] = []

    def start(binary: str = "etcd", name: str = "n1", *, client_port: int | None = None,
              peer_port: int | None = None, extra_args: Sequence[str] = (),
              initial_cluster: str | None = None, wait: bool = True, timeout: float = 30.0) -> ServerProcess:
        server = ServerProcess(
            binary=binary, name=name, data_dir=base_dir / f"{binary}-{name}-{len(started)}.etcd",
            client_port=client_port or free_port(), peer_port=peer_port or free_port(),
            extra_args=extra_args, initial_cluster=initial_cluster)
        started.append(server)
        return server.start(wait=wait, timeout=timeout)

    return start, started


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """`start_server(binary="etcd"|"pyetcd", name=..., ...)` -> a running, healthy ServerProcess."""
    start, started = _server_starter(tmp_path)
    try:
        yield start
    finally:
        for server in reversed(started):
            server.stop()


@pytest.fixture(scope="module")
def start_module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartServer]:
    """Like `start_server`, but the servers live until the test module is done."""
    start, started = _server_starter(tmp_path_factory.mktemp("servers"))
    try:
        yield start
    finally:
        for server in reversed(started):
            server.stop()
