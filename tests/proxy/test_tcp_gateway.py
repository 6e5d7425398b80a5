"""`pyetcd gateway start` beside `etcd gateway start`: the same refusals, and etcdctl through both.

Both gateways relay to the same endpoints (a dead port, a pyetcd member, a real etcd member), so the
round-robin order, the log lines and the exit on SIGTERM are compared between them.
"""

from __future__ import annotations

import base64
import json
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.servers import (
    HOST,
    JsonWatch,
    ServerProcess,
    binary_path,
    free_port,
    run_etcdctl,
    stop_process,
)


def run_gateway_command(binary: str, *args: str) -> tuple[int, str, str]:
    """One `<binary> gateway ...` run that must end by itself; its output with the program name made alike."""
    done = subprocess.run([binary_path(binary), "gateway", *args], capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)
    return done.returncode, done.stdout.replace("etcd gateway", "GATEWAY").replace("pyetcd gateway", "GATEWAY") \
        .replace("pyGATEWAY", "GATEWAY"), done.stderr.replace("pyetcd gateway", "GATEWAY") \
        .replace("etcd gateway", "GATEWAY")


REFUSED_AS_ETCD_REFUSES = [
    ["start", "--help"],
    ["start", "-h"],
    ["--help"],
    ["start", "--bogus"],
    ["start", "-x"],
    ["start", "---x"],
    ["start", "--listen-addr"],
    ["start", "--retry-delay=xyz"],
    ["start", "--retry-delay=5"],
    ["start", "--insecure-discovery=maybe"],
    ["start", "--listen-addr=nocolon"],
    ["start", "--endpoints=foo", "--listen-addr=127.0.0.1:1"],
    ["start", "--endpoints=http://127.0.0.1:2", "--listen-addr=127.0.0.1:2"],
    ["start", "--endpoints=", "--listen-addr=127.0.0.1:1"],
]


@pytest.mark.parametrize("args", REFUSED_AS_ETCD_REFUSES, ids=" ".join)
def test_help_and_refusals_match_etcd_gateway(args: list[str]) -> None:
    etcd = run_gateway_command("etcd", *args)
    pyetcd = run_gateway_command("pyetcd", *args)
    assert pyetcd == etcd
    assert etcd[0] == 0 if "--help" in args or "-h" in args else etcd[0] == 1


@pytest.mark.parametrize("before", [[], ["foo"], ["foo", "bar"]], ids=lambda before: " ".join(before) or "none")
def test_a_port_in_use_is_refused_with_go_words(before: list[str]) -> None:
    # Positional arguments are ignored by etcd's `gateway start`: the flags after them still count.
    with socket.create_server((HOST, 0)) as taken:
        address = f"{HOST}:{taken.getsockname()[1]}"
        etcd = run_gateway_command("etcd", "start", *before, f"--listen-addr={address}")
        pyetcd = run_gateway_command("pyetcd", "start", *before, f"--listen-addr={address}")
    assert pyetcd == etcd == (1, "", f"listen tcp {address}: bind: address already in use\n")


@pytest.mark.parametrize("flag", ["--discovery-srv=example.com", "--discovery-srv-name=x", "--insecure-discovery",
                                  "--trusted-ca-file=/tmp/ca.pem"])
def test_dns_srv_discovery_is_refused_rather_than_ignored(flag: str) -> None:
    code, stdout, stderr = run_gateway_command("pyetcd", "start", flag, "--listen-addr=127.0.0.1:1")
    assert code == 1 and stdout == ""
    assert f"{flag.split('=')[0]}: DNS SRV discovery is not supported" in stderr


@pytest.mark.parametrize("args", [["strat"], ["strat", "x"], ["bogus", "--help"]], ids=" ".join)
def test_an_unknown_gateway_subcommand_prints_the_groups_help_as_etcd(args: list[str]) -> None:
    etcd = run_gateway_command("etcd", *args)
    assert run_gateway_command("pyetcd", *args) == etcd
    assert etcd[0] == 0 and "Available Commands:" in etcd[1]


class GatewayProcess:
    """`<binary> gateway start` on a port the test picked, its zap log lines read from a file."""

    def __init__(self, binary: str, endpoints: list[str], log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [binary_path(binary), "gateway", "start", f"--endpoints={','.join(endpoints)}",
                 f"--listen-addr={HOST}:{self.port}", "--retry-delay=1s"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            self.wait_for("ready to proxy client requests")
        except BaseException:
            self.stop()
            raise

    @property
    def endpoint(self) -> str:
        return f"{HOST}:{self.port}"

    def records(self) -> list[dict[str, object]]:
        """The log lines without the fields that differ by nature (time, source location)."""
        lines = self.log_path.read_text().splitlines()
        records = [json.loads(line) for line in lines if line.startswith("{")]
        return [{k: v for k, v in record.items() if k not in ("ts", "caller")} for record in records]

    def wait_for(self, message: str, timeout: float = 15.0) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [record for record in self.records() if record["msg"] == message]
            if found:
                return found[0]
            assert self.process.poll() is None, self.log_path.read_text()
            time.sleep(0.05)
        raise AssertionError(f"no {message!r} in {self.log_path.read_text()}")

    def etcdctl(self, *args: str, input: str | None = None) -> str:
        result = run_etcdctl(self.endpoint, *args, input=input)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def stop(self) -> int:
        return stop_process(self.process)


@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServerProcess]]:
    """A one-member pyetcd cluster and a one-member etcd cluster: each endpoint is told apart by its data."""
    base = tmp_path_factory.mktemp("gateway")
    servers = {binary: ServerProcess(binary, binary, base / binary, free_port(), free_port())
               for binary in ("pyetcd", "etcd")}
    try:
        for binary, server in servers.items():
            server.start()
            assert server.etcdctl("put", "backend", binary).returncode == 0
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@pytest.mark.parametrize("binary", ["etcd", "pyetcd"])
def test_etcdctl_through_the_gateway_round_robin_skipping_a_dead_endpoint(
        binary: str, backends: dict[str, ServerProcess], tmp_path: Path) -> None:
    dead_port = free_port()
    dead = f"{HOST}:{dead_port}"
    endpoints = [dead, backends["pyetcd"].client_url, backends["etcd"].endpoint]
    gateway = GatewayProcess(binary, endpoints, tmp_path / "gateway.log")
    try:
        assert gateway.records()[0] == {"level": "info", "msg": "ready to proxy client requests",
                                        "endpoints": [dead, backends["pyetcd"].endpoint, backends["etcd"].endpoint]}
        # Each etcdctl run is one connection: the dead endpoint is tried once, then skipped.
        served_by = [gateway.etcdctl("get", "backend", "--print-value-only").strip() for _ in range(4)]
        assert served_by == ["pyetcd", "etcd", "pyetcd", "etcd"]
        assert gateway.wait_for("deactivated endpoint") == {
            "level": "warn", "msg": "deactivated endpoint", "address": dead, "interval": 1,
            "error": f"dial tcp {dead}: connect: connection refused"}

        # Put and get through it: connections alternate between the two clusters.
        key = f"gateway-{binary}"
        big = "v" * 1_000_000
        assert gateway.etcdctl("put", key, "one").strip() == "OK"  # -> pyetcd
        assert gateway.etcdctl("put", key, input=big).strip() == "OK"  # -> etcd
        assert gateway.etcdctl("get", key, "--print-value-only").strip() == "one"  # -> pyetcd
        assert gateway.etcdctl("get", key, "--print-value-only").strip() == big  # -> etcd
        assert backends["pyetcd"].etcdctl("get", key, "--print-value-only").stdout.strip() == "one"

        # A watch through the gateway (-> pyetcd) sees the put made on the member it was relayed to.
        with JsonWatch(f"http://{gateway.endpoint}", key) as watch:
            watch.wait_created()
            assert backends["etcd"].etcdctl("put", key, "on-etcd").returncode == 0
            assert backends["pyetcd"].etcdctl("put", key, "on-pyetcd").returncode == 0
            events = watch.next_response()["result"]["events"]
            assert [(base64.b64decode(e["kv"]["key"]).decode(), base64.b64decode(e["kv"]["value"]).decode())
                    for e in events] == [(key, "on-pyetcd")]

        assert gateway.wait_for("failed to activate endpoint (stay inactive for another interval)") == {
            "level": "warn", "msg": "failed to activate endpoint (stay inactive for another interval)",
            "address": dead, "interval": 1, "error": f"dial tcp {dead}: connect: connection refused"}
        with socket.create_server((HOST, dead_port)):
            assert gateway.wait_for("activated") == {"level": "info", "msg": "activated", "address": dead}
    finally:
        status = gateway.stop()
    # etcd's gateway dies of the signal; pyetcd's closes its sockets first, then does the same.
    assert status == -signal.SIGTERM
    with socket.create_server((HOST, gateway.port)):
        pass
