"""The servers under test: an etcd or pyetcd cluster started with etcd's flags on loopback, or the
do-nothing reference servicer; each member has its own data dir and free ports.

Every process is started in its own session (so Ctrl-C reaches only the harness, which then
stops them in order) and `stop()` sends SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from devservers import HOST, REPO, binary_path, free_port, spawn, stop_process
from etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc

READY_TIMEOUT_S = 60.0
STOP_GRACE_S = 10.0
CLUSTER_TOKEN = "bench-cluster"


@dataclass
class Member:
    """One server process and where it keeps its data and log."""

    name: str
    command: list[str]
    endpoint: str
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        self.process = spawn(self.command, self.log_path, cwd=REPO)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, STOP_GRACE_S)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Target:
    """What the load is aimed at: every member of one cluster (or the reference servicer)."""

    kind: str  # "etcd", "pyetcd" or "reference"
    members: list[Member]

    @property
    def endpoints(self) -> tuple[str, ...]:
        return tuple(member.endpoint for member in self.members)

    @property
    def pids(self) -> list[int]:
        return [member.pid for member in self.members]

    def start(self) -> None:
        try:
            for member in self.members:
                member.start()
            deadline = time.monotonic() + READY_TIMEOUT_S
            for member in self.members:
                wait_serving(member, deadline)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for member in reversed(self.members):
            member.stop()


def cluster(kind: str, size: int, base_dir: Path) -> Target:
    """An etcd or pyetcd cluster of `size` members with etcd's flags (not started yet)."""
    names = [f"{kind}{size}-{number}" for number in range(1, size + 1)]
    client_ports = {name: free_port() for name in names}
    peer_urls = {name: f"http://{HOST}:{free_port()}" for name in names}
    initial_cluster = ",".join(f"{name}={peer_urls[name]}" for name in names)
    members = []
    for name in names:
        client_url = f"http://{HOST}:{client_ports[name]}"
        command = [
            binary_path(kind), f"--name={name}", f"--data-dir={base_dir / (name + '.etcd')}",
            f"--listen-client-urls={client_url}", f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_urls[name]}", f"--initial-advertise-peer-urls={peer_urls[name]}",
            f"--initial-cluster={initial_cluster}", f"--initial-cluster-token={CLUSTER_TOKEN}-{kind}{size}",
            "--initial-cluster-state=new",
        ]
        members.append(Member(name, command, f"{HOST}:{client_ports[name]}", base_dir / f"{name}.log"))
    return Target(kind, members)


def serving_cluster(size: int, base_dir: Path, serving_processes: int, kind: str, pin: str = "") -> Target:
    """A pyetcd cluster whose members serve clients from `serving_processes` processes each, optionally
    under `taskset -c pin`; its data dirs go in a directory of their own beside any other pyetcd cluster's."""
    directory = base_dir / f"serving{serving_processes}{pin.replace(',', '')}"
    directory.mkdir(parents=True, exist_ok=True)
    target = cluster("pyetcd", size, directory)
    for member in target.members:
        if serving_processes > 1:
            member.command.append(f"--serving-processes={serving_processes}")
        if pin:
            member.command[:0] = ["taskset", "-c", pin]
    target.kind = kind
    return target


def reference(base_dir: Path) -> Target:
    """The do-nothing gRPC servicer, as its own process like the servers it is compared with."""
    port = free_port()
    command = [sys.executable, "-m", "benchmarks.compare.reference", f"--listen={HOST}:{port}"]
    return Target("reference", [Member("reference", command, f"{HOST}:{port}", base_dir / "reference.log")])


def wait_serving(member: Member, deadline: float) -> None:
    """Until a linearizable Range succeeds on the member (it has a leader and serves clients)."""
    last = "no answer yet"
    with grpc.insecure_channel(member.endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        while time.monotonic() < deadline:
            if member.process is None or member.process.poll() is not None:
                raise RuntimeError(f"{member.name} exited early:\n{member.log_tail()}")
            try:
                kv.Range(rpc_pb2.RangeRequest(key=b"bench-probe"), timeout=2)
                return
            except grpc.RpcError as err:
                last = str(err)
            time.sleep(0.1)
    raise TimeoutError(f"{member.name} not serving: {last}\n{member.log_tail()}")
