"""Cluster members for the grpc-proxy tests (real etcd or pyetcd), on ports the tests pick, and etcdctl runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from pyetcd.proxy import GrpcProxy
from tests.helpers.servers import ServerProcess, etcdctl_env, free_port


def stub(stub_class: Any, channel: Any) -> Any:
    """A client stub; typed loosely because the generated stub classes carry no annotations."""
    return stub_class(channel)


@dataclass
class EtcdCluster:
    members: list[ServerProcess] = field(default_factory=list)

    @property
    def endpoints(self) -> list[str]:
        return [member.endpoint for member in self.members]

    def kill(self) -> None:
        for member in self.members:
            member.kill()


def start_etcd_cluster(base: Path, size: int, binary: str = "etcd") -> EtcdCluster:
    """Start `size` members of `binary` ("etcd" or "pyetcd") forming one new cluster; wait for a leader."""
    token = f"proxy-test-{base.name}"
    cluster = EtcdCluster([ServerProcess(binary, f"m{i}", base / f"m{i}", free_port(), free_port())
                           for i in range(size)])
    initial = ",".join(f"{m.name}={m.peer_url}" for m in cluster.members)
    try:
        for member in cluster.members:
            member.initial_cluster = initial
            member.extra_args = ["--initial-cluster-token", token, "--initial-cluster-state", "new",
                                 "--heartbeat-interval", "50", "--election-timeout", "500"]
            member.start(wait=False)
        for member in cluster.members:
            _wait_for_leader(member)
    except BaseException:
        cluster.kill()
        raise
    return cluster


def _wait_for_leader(member: ServerProcess) -> None:
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
                raise RuntimeError(f"{member.binary} member {member.name} did not become ready:\n{member.log_tail()}")
            time.sleep(0.05)


ProxyFactory = Callable[..., Awaitable[GrpcProxy]]


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
