"""A pyetcd cluster of real processes whose peer traffic goes through the fault proxy.

Each member listens for peers on its own port but advertises a proxy port, in
--initial-advertise-peer-urls and in everyone's --initial-cluster, so the cluster's
membership only ever names proxy ports. Members can be killed (SIGKILL) and restarted
from their data directory, paused (SIGSTOP) and resumed; every process is stopped by
`stop()`, and dies with the harness anyway (parent-death signal) should it be killed.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from devservers import HOST, REPO, binary_path, free_port, kill_process, spawn, stop_process
from etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.chaos.proxy import PeerProxy


@dataclass
class Member:
    """One member's ports, data and current process."""

    index: int
    name: str
    data_dir: Path
    client_port: int
    peer_port: int
    advertised_peer_port: int = 0
    process: subprocess.Popen[bytes] | None = None
    paused: bool = False
    starts: int = 0
    member_id: int = 0
    joins_existing: bool = False
    """Started again after a membership change: it joins the running cluster instead of forming one."""
    generation: int = 0

    @property
    def endpoint(self) -> str:
        return f"{HOST}:{self.client_port}"

    @property
    def advertised_peer_url(self) -> str:
        return f"http://{HOST}:{self.advertised_peer_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.name}.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class ChaosCluster:
    """`size` members started together with --initial-cluster-state new behind a PeerProxy."""

    base_dir: Path
    size: int = 3
    token: str = "chaos"
    extra_args: Sequence[str] = ()
    binary: str = "pyetcd"
    """Or "etcd": the same harness against the real thing, to check the harness itself."""
    members: list[Member] = field(default_factory=list)
    proxy: PeerProxy = field(init=False)

    def __post_init__(self) -> None:
        self.proxy = PeerProxy(self.pids)

    # -- life cycle

    def prepare(self) -> None:
        """Start the proxy and pick every member's ports, so faults can be set before anyone starts."""
        if self.members:
            return
        self.base_dir.mkdir(parents=True, exist_ok=True)
        atexit.register(self.stop)  # should the caller's own clean-up never run
        self.proxy.start()
        for index in range(self.size):
            member = Member(index, f"m{index}", self.base_dir / f"m{index}.etcd", free_port(), free_port())
            member.advertised_peer_port = self.proxy.listen(index, member.peer_port)
            self.members.append(member)

    def start(self) -> None:
        """Start every member without waiting: a member only serves once there is a leader."""
        self.prepare()
        for member in self.members:
            if not member.running:
                self.spawn(member)

    def initial_cluster(self) -> str:
        return ",".join(f"{m.name}={m.advertised_peer_url}" for m in self.members)

    def command(self, member: Member) -> list[str]:
        client_url = f"http://{member.endpoint}"
        argv = [*self._server_command(), f"--name={member.name}", f"--data-dir={member.data_dir}",
                f"--listen-client-urls={client_url}", f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls=http://{HOST}:{member.peer_port}",
                f"--initial-advertise-peer-urls={member.advertised_peer_url}",
                f"--initial-cluster={self.initial_cluster()}", f"--initial-cluster-token={self.token}",
                f"--initial-cluster-state={'existing' if member.joins_existing else 'new'}", *self.extra_args]
        setpriv = shutil.which("setpriv")
        # The members die with the harness even if it is killed outright.
        return [setpriv, "--pdeathsig", "KILL", *argv] if setpriv else argv

    def _server_command(self) -> list[str]:
        """etcd, pyetcd, or pyetcd with a deliberate bug ("pyetcd+BUG", see buggy_member.py)."""
        if self.binary.startswith("pyetcd+"):
            return [sys.executable, "-m", "tests.chaos.buggy_member", self.binary.partition("+")[2]]
        return [binary_path(self.binary)]

    def spawn(self, member: Member) -> None:
        member.process = spawn(self.command(member), member.log_path, env=_environment(),
                               banner=f"\n=== start {member.starts} ===\n")
        member.starts += 1
        member.paused = False

    def pids(self) -> dict[int, int]:
        """pid -> member index of every running member (the proxy's way to name a connection's opener)."""
        return {m.process.pid: m.index for m in list(self.members) if m.process is not None and m.running}

    def stop(self) -> None:
        """Stop every member (resuming paused ones so they can exit cleanly) and the proxy."""
        atexit.unregister(self.stop)
        for member in self.members:
            self._terminate(member)
        self.proxy.stop()

    def _terminate(self, member: Member, grace: float = 5.0) -> None:
        if member.process is not None:
            stop_process(member.process, grace)
        member.paused = False

    # -- faults

    def kill(self, index: int) -> None:
        """SIGKILL: no shutdown, no leader hand-over; only what reached the disk survives."""
        member = self.members[index]
        if member.process is not None:
            kill_process(member.process)
        member.paused = False

    def restart(self, index: int) -> None:
        member = self.members[index]
        if not member.running:
            self.spawn(member)

    def retire(self, index: int) -> None:
        """After the member was removed from the cluster: stop it and set its data aside, so it
        can come back as a new member (kept for study, not deleted)."""
        member = self.members[index]
        if member.process is not None and member.running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                member.process.wait(5)  # a removed member shuts itself down
        self.kill(index)
        member.generation += 1
        if member.data_dir.exists():
            member.data_dir.rename(member.data_dir.with_name(f"{member.data_dir.name}.removed-{member.generation}"))
        member.joins_existing = True
        member.member_id = 0

    def pause(self, index: int) -> None:
        member = self.members[index]
        if member.process is not None and member.running:
            os.kill(member.process.pid, signal.SIGSTOP)
            member.paused = True

    def resume(self, index: int) -> None:
        member = self.members[index]
        if member.process is not None and member.running:
            os.kill(member.process.pid, signal.SIGCONT)
        member.paused = False

    def log_tail(self, index: int, lines: int = 30) -> str:
        try:
            text = self.members[index].log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _environment() -> dict[str, str]:
    """The harness's environment without ETCD_* settings, which members would take as flags."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith("ETCD_")}
    environment["PYTHONPATH"] = str(REPO)  # for `python -m tests.chaos.buggy_member`
    return environment


async def wait_serving(cluster: ChaosCluster, channels: Sequence[grpc.aio.Channel], timeout: float = 60.0) -> None:
    """Until every member answers a linearizable read, and learn each member's ID."""
    deadline = asyncio.get_running_loop().time() + timeout
    for member, channel in zip(cluster.members, channels, strict=True):
        await wait_member_serving(cluster, member, channel, deadline)


async def wait_member_serving(cluster: ChaosCluster, member: Member, channel: grpc.aio.Channel,
                              deadline: float) -> None:
    """Until `member` answers a linearizable read (by the loop's clock `deadline`); learn its ID."""
    loop = asyncio.get_running_loop()
    kv = rpc_pb2_grpc.KVStub(channel)
    while True:
        if not member.running:
            raise RuntimeError(f"{member.name} exited:\n{cluster.log_tail(member.index)}")
        try:
            answer = await kv.Range(rpc_pb2.RangeRequest(key=b"health"), timeout=2.0)
            member.member_id = answer.header.member_id
            return
        except grpc.aio.AioRpcError:
            if loop.time() > deadline:
                raise TimeoutError(f"{member.name} not serving in time:\n"
                                   f"{cluster.log_tail(member.index)}") from None
            await asyncio.sleep(0.3)
