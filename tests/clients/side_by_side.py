"""Runs a client library's scenario against real etcd and pyetcd at once and returns what each saw.

The client libraries live outside the project's virtualenv (`make client-venvs` puts python-etcd3 and
aetcd in `.clients/` and the npm client in tests/clients/node/node_modules), so every scenario is a
subprocess that prints JSON. Both runs go in parallel: the servers are independent, and it halves the time.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pyetcd.snapshot_file import strip_trailer
from storage.bbolt import read_database
from tests.helpers.servers import HOST, REPO, ServerProcess, etcdctl_env

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE / "node" / "node_modules"
SCENARIO_TIMEOUT = 60.0

Command = Callable[[ServerProcess], list[str]]


def client_python(name: str) -> str:
    """The interpreter of the client's own virtualenv, `.clients/<name>`."""
    python = REPO / ".clients" / name / "bin" / "python"
    if not python.exists():
        pytest.fail(f"{python} is missing: run `make client-venvs` first")
    return str(python)


def node_binary() -> str:
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None or not (NODE_MODULES / "etcd3").is_dir():
        pytest.fail("node or the npm etcd3 client is missing: run `make client-venvs` first")
    return node


def anonymous_ports(text: str, server: ServerProcess) -> str:
    """The two servers listen on different ports; name them by role so their outputs compare."""
    return text.replace(f"{HOST}:{server.client_port}", f"{HOST}:CLIENT-PORT") \
        .replace(f"{HOST}:{server.peer_port}", f"{HOST}:PEER-PORT")


def start_pair(servers: dict[str, ServerProcess]) -> None:
    """Start every server, then wait for all: the two start-ups overlap."""
    for server in servers.values():
        server.start(wait=False)
    for server in servers.values():
        server.wait_healthy()


def run_side_by_side(command: Command, servers: dict[str, ServerProcess],
                     env: dict[str, str] | None = None) -> dict[str, Any]:
    """`command(server)` against every server at once; each must exit 0 and print one JSON value.

    `env` adds to the environment the client runs in (the TLS files, for https members).
    """
    environment = {**os.environ, **(env or {})}
    running = {name: subprocess.Popen(command(server), cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      stdin=subprocess.DEVNULL, start_new_session=True, env=environment)
               for name, server in servers.items()}
    outputs: dict[str, tuple[int, bytes, bytes]] = {}
    try:
        for name, process in running.items():
            stdout, stderr = process.communicate(timeout=SCENARIO_TIMEOUT)
            outputs[name] = (process.returncode, stdout, stderr)
    finally:
        for process in running.values():
            if process.poll() is None:
                process.kill()
                process.wait(10)
    seen: dict[str, Any] = {}
    for name, (returncode, stdout, stderr) in outputs.items():
        assert returncode == 0, f"{name}: exit {returncode}\n{stderr.decode(errors='replace')[-3000:]}"
        seen[name] = json.loads(anonymous_ports(stdout.decode(), servers[name]))
    return seen


def snapshot_status(path: Path) -> dict[str, Any]:
    """What the real `etcdctl snapshot status FILE -w json` says of a snapshot file."""
    result = subprocess.run(["etcdctl", "snapshot", "status", str(path), "-w", "json"], capture_output=True,
                            text=True, timeout=30, env=etcdctl_env())
    assert result.returncode == 0, f"etcdctl snapshot status {path.name}: {result.stdout}{result.stderr}"
    status: dict[str, Any] = json.loads(result.stdout)
    return status


def keys_per_bucket(path: Path) -> dict[str, int]:
    """How many keys each bucket of a snapshot holds, read with pyetcd's bbolt reader."""
    _, root = read_database(strip_trailer(path.read_bytes(), False))
    return {name.decode(): len(bucket.items) for name, bucket in root.buckets.items()}


def assert_same_snapshots(etcd_file: Path, pyetcd_file: Path) -> None:
    """Both files are etcd snapshots to the real etcdctl, of the same revision and the same keys."""
    etcd_status, pyetcd_status = snapshot_status(etcd_file), snapshot_status(pyetcd_file)
    assert pyetcd_status["revision"] == etcd_status["revision"] > 1
    assert pyetcd_status["hash"] != 0 and pyetcd_status["totalSize"] > 0
    etcd_buckets, pyetcd_buckets = keys_per_bucket(etcd_file), keys_per_bucket(pyetcd_file)
    assert pyetcd_buckets["key"] == etcd_buckets["key"] > 20
    assert pyetcd_buckets["lease"] == etcd_buckets["lease"] == 1
    assert pyetcd_status["totalKey"] == etcd_status["totalKey"], (pyetcd_buckets, etcd_buckets)


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


def enable_auth(servers: dict[str, ServerProcess]) -> None:
    """AUTH_SETUP through the real etcdctl on every (running) server."""
    for server in servers.values():
        for command in AUTH_SETUP:
            result = server.etcdctl(*command)
            assert result.returncode == 0, f"{server.binary}: etcdctl {' '.join(command)}: {result.stderr}"
