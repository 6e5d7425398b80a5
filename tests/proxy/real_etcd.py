"""Cluster members for the grpc-proxy tests (real etcd or pyetcd), on ports the tests pick, and etcdctl runs."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from pyetcd.proxy import GrpcProxy


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stub(stub_class: Any, channel: Any) -> Any:
    """A client stub; typed loosely because the generated stub classes carry no annotations."""
    return stub_class(channel)


@dataclass
class EtcdMember:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@dataclass
class EtcdCluster:
    members: list[EtcdMember] = field(default_factory=list)

    @property
    def endpoints(self) -> list[str]:
        return [member.endpoint for member in self.members]

    def kill(self) -> None:
        for member in self.members:
            member.kill()


PYETCD_BINARY = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "pyetcd")


def start_etcd_cluster(base: Path, size: int, binary: str = "etcd") -> EtcdCluster:
    """Start `size` members of `binary` ("etcd" or "pyetcd") forming one new cluster; wait for a leader."""
    program = PYETCD_BINARY if binary == "pyetcd" else shutil.which("etcd")
    if program is None or not os.path.exists(program):
        pytest.skip(f"{binary} is not installed")
    token = f"proxy-test-{base.name}"
    cluster = EtcdCluster([EtcdMember(f"m{i}", free_port(), free_port(), base / f"m{i}")
                           for i in range(size)])
    initial = ",".join(f"{m.name}={m.peer_url}" for m in cluster.members)
    try:
        for member in cluster.members:
            member.process = subprocess.Popen(
                [program, "--name", member.name, "--data-dir", str(member.data_dir),
                 "--listen-client-urls", f"http://{member.endpoint}",
                 "--advertise-client-urls", f"http://{member.endpoint}",
                 "--listen-peer-urls", member.peer_url, "--initial-advertise-peer-urls", member.peer_url,
                 "--initial-cluster", initial, "--initial-cluster-token", token,
                 "--initial-cluster-state", "new", "--heartbeat-interval", "50", "--election-timeout", "500"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        for member in cluster.members:
            _wait_for_leader(member)
    except BaseException:
        cluster.kill()
        raise
    return cluster


def _wait_for_leader(member: EtcdMember) -> None:
    deadline = time.monotonic() + 30
    with grpc.insecure_channel(member.endpoint) as channel:
        maintenance = stub(rpc_pb2_grpc.MaintenanceStub, channel)
        while True:
            try:
                if maintenance.Status(rpc_pb2.StatusRequest(), timeout=1).leader:
                    return
            except grpc.RpcError:
                pass
            assert member.process is not None
            if time.monotonic() > deadline or member.process.poll() is not None:
                raise RuntimeError(f"etcd member {member.name} did not become ready")
            time.sleep(0.05)


ProxyFactory = Callable[..., Awaitable[GrpcProxy]]


def etcdctl_env() -> dict[str, str]:
    """The environment for etcdctl: API v3, and none of the caller's ETCDCTL_* settings."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("ETCDCTL_")}
    env["ETCDCTL_API"] = "3"
    return env


async def etcdctl(endpoint: str, *args: str) -> str:
    """Run the real etcdctl against `endpoint`; its output, failing the test on a non-zero exit."""
    process = await asyncio.create_subprocess_exec(
        "etcdctl", f"--endpoints={endpoint}", "--dial-timeout=3s", "--command-timeout=5s", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=etcdctl_env())
    out, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0, f"etcdctl {' '.join(args)} failed: {err.decode()}"
    return out.decode()


async def etcdctl_watch(endpoint: str, *args: str) -> asyncio.subprocess.Process:
    """A running `etcdctl watch args...`; the caller kills it."""
    return await asyncio.create_subprocess_exec(
        "etcdctl", f"--endpoints={endpoint}", "watch", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL, env=etcdctl_env())
