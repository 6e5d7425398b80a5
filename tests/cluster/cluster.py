"""Multi-member clusters of real server processes for tests, built on tests.helpers.servers."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers.servers import ServerProcess, free_port, run_etcdctl


def wait_until(check: Callable[[], bool], timeout: float = 30.0, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return False


@dataclass
class Cluster:
    """Members started with --initial-cluster-state new, then grown and shrunk with etcdctl."""

    base_dir: Path
    binary: str = "pyetcd"
    token: str = "test-cluster"
    extra_args: Sequence[str] = ()
    members: list[ServerProcess] = field(default_factory=list)
    stopped: list[ServerProcess] = field(default_factory=list)

    def start(self, size: int, running: int | None = None) -> Cluster:
        """A `size`-member cluster; only the first `running` members (all by default) are started."""
        ports = [(free_port(), free_port()) for _ in range(size)]
        initial = ",".join(f"m{i}=http://127.0.0.1:{peer}" for i, (_, peer) in enumerate(ports))
        for i, (client, peer) in enumerate(ports):
            self.members.append(ServerProcess(
                binary=self.binary, name=f"m{i}", data_dir=self.base_dir / f"m{i}.etcd", client_port=client,
                peer_port=peer, initial_cluster=initial,
                extra_args=[f"--initial-cluster-token={self.token}", "--initial-cluster-state=new",
                            *self.extra_args]))
        started = self.members[:running]
        for member in started:
            member.start(wait=False)
        for member in started:
            member.wait_healthy(timeout=60)
        return self

    def endpoints(self, members: Sequence[ServerProcess] | None = None) -> str:
        return ",".join(m.endpoint for m in (members if members is not None else self.running()))

    def running(self) -> list[ServerProcess]:
        return [m for m in self.members if m.process is not None and m.process.poll() is None]

    def etcdctl(self, *args: str, member: ServerProcess | None = None, timeout: float = 30.0) -> str:
        endpoint = (member or self.running()[0]).endpoint
        result = run_etcdctl(endpoint, *args, timeout=timeout)
        if result.returncode != 0:
            raise AssertionError(f"etcdctl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def status(self, member: ServerProcess) -> dict[str, object]:
        answer = json.loads(self.etcdctl("endpoint", "status", "-w", "json", member=member))
        status: dict[str, object] = answer[0]["Status"]
        return status

    def leader_id(self) -> int:
        """The leader the running members agree on (0 if they do not agree yet)."""
        leaders = {int(str(self.status(m)["leader"])) for m in self.running()}
        return leaders.pop() if len(leaders) == 1 else 0

    def member_id(self, member: ServerProcess) -> int:
        return int(str(json.loads(self.etcdctl("endpoint", "status", "-w", "json", member=member))[0]
                       ["Status"]["header"]["member_id"]))

    def leader(self) -> ServerProcess:
        assert wait_until(lambda: self.leader_id() != 0), "the members never agreed on a leader"
        leader = self.leader_id()
        return next(m for m in self.running() if self.member_id(m) == leader)

    def followers(self) -> list[ServerProcess]:
        leader = self.leader()
        return [m for m in self.running() if m is not leader]

    def add_member(self, name: str, *, learner: bool = False, start: bool = True) -> tuple[ServerProcess, int]:
        """`etcdctl member add`, then start the new member with the ETCD_* settings it printed."""
        client, peer = free_port(), free_port()
        args = ["member", "add", name, f"--peer-urls=http://127.0.0.1:{peer}"]
        if learner:
            args.append("--learner")
        output = ""
        for _ in range(40):  # a voter is refused until every member has been connected for a while
            result = run_etcdctl(self.running()[0].endpoint, *args)
            output = result.stdout + result.stderr
            if "unhealthy cluster" not in output:
                break
            time.sleep(0.5)
        settings = dict(line.split("=", 1) for line in output.splitlines() if line.startswith("ETCD_"))
        assert "ETCD_INITIAL_CLUSTER" in settings, output
        member_id = int(output.split("Member ", 1)[1].split()[0], 16)
        member = ServerProcess(
            binary=self.binary, name=name, data_dir=self.base_dir / f"{name}.etcd", client_port=client,
            peer_port=peer, initial_cluster=settings["ETCD_INITIAL_CLUSTER"].strip('"'),
            extra_args=[f"--initial-cluster-token={self.token}", "--initial-cluster-state=existing",
                        *self.extra_args])
        self.members.append(member)
        if start:
            member.start(wait=not learner, timeout=60)
        return member, member_id

    def stop_member(self, member: ServerProcess) -> None:
        member.stop()

    def stop(self) -> None:
        for member in reversed(self.members):
            member.stop()
