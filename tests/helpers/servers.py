"""Server processes (real etcd or pyetcd) on ports a test picks, and etcdctl runs against them.

Both binaries take etcd's flags, so one test can drive either and compare what etcdctl
prints. Every process started here is stopped (SIGTERM, then SIGKILL) by its owner. Ports,
binaries, starting and stopping come from `devservers`, which the chaos harness and the
benchmarks share; they are re-exported here for the tests.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from devservers import (
    HOST,
    PYETCD_BINARY,
    REPO,
    binary_path,
    free_port,
    kill_process,
    spawn,
    stop_process,
)

__all__ = ["HOST", "PYETCD_BINARY", "REPO", "EtcdctlWatch", "JsonWatch", "ServerProcess", "StartServer",
           "binary_path", "error_lines", "etcdctl_env", "free_port", "kill_process", "run_etcdctl",
           "stop_process"]


SERVING_PROCESSES_VARIABLE = "PYETCD_TEST_SERVING_PROCESSES"
"""When set (e.g. to 2), every pyetcd member a test starts serves clients from that many serving processes."""


def etcdctl_env() -> dict[str, str]:
    env = dict(os.environ)
    env["ETCDCTL_API"] = "3"
    for name in list(env):  # a caller's ETCDCTL_* settings must not leak into the test
        if name.startswith("ETCDCTL_") and name != "ETCDCTL_API":
            del env[name]
    return env


def run_etcdctl(endpoint: str, *args: str, input: str | bytes | None = None,
                timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run `etcdctl --endpoints=<endpoint> args...` (API v3) and capture its output as text."""
    data = input.encode() if isinstance(input, str) else input
    completed = subprocess.run(
        ["etcdctl", f"--endpoints={endpoint}", *args], input=data, env=etcdctl_env(),
        capture_output=True, timeout=timeout)
    return subprocess.CompletedProcess(
        completed.args, completed.returncode,
        completed.stdout.decode(errors="replace"), completed.stderr.decode(errors="replace"))


def error_lines(stderr: str) -> list[str]:
    """etcdctl's own messages, without the client library's JSON retry logs."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("{")]


@dataclass
class ServerProcess:
    """One member started with etcd's flags: `binary` is "etcd" or "pyetcd"."""

    binary: str
    name: str
    data_dir: Path
    client_port: int
    peer_port: int
    extra_args: Sequence[str] = ()
    initial_cluster: str | None = None  # default: a cluster of just this member
    flags_as_environment: bool = False  # pass the member's flags as ETCD_* variables instead
    extra_environment: dict[str, str] = field(default_factory=dict)
    working_dir: Path | None = None  # where relative paths (unix socket URLs) resolve; default: ours
    client_scheme: str = "http"
    peer_scheme: str = "http"
    peer_host: str = HOST  # a unix socket URL names its file by host:port (etcd's rule), e.g. localhost:port
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def client_url(self) -> str:
        return f"{self.client_scheme}://{HOST}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"{self.peer_scheme}://{self.peer_host}:{self.peer_port}"

    @property
    def endpoint(self) -> str:
        return f"{HOST}:{self.client_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    def member_flags(self) -> dict[str, str]:
        """The flags that make this member: name, data dir, URLs and initial cluster."""
        return {
            "name": self.name,
            "data-dir": str(self.data_dir),
            "listen-client-urls": self.client_url,
            "advertise-client-urls": self.client_url,
            "listen-peer-urls": self.peer_url,
            "initial-advertise-peer-urls": self.peer_url,
            "initial-cluster": self.initial_cluster or f"{self.name}={self.peer_url}",
        }

    def command(self) -> list[str]:
        if self.flags_as_environment:
            return [binary_path(self.binary), *self.extra_args]
        return [binary_path(self.binary), *(f"--{flag}={value}" for flag, value in self.member_flags().items()),
                *self.serving_mode_args(), *self.extra_args]

    def serving_mode_args(self) -> list[str]:
        """`--serving-processes N` for a pyetcd member when SERVING_PROCESSES_VARIABLE asks for it (`make
        test-serving` runs the API and etcdctl tests so) and the test did not choose a count itself."""
        count = os.environ.get(SERVING_PROCESSES_VARIABLE, "")
        chosen = any("serving-processes" in arg for arg in self.extra_args)
        # A member with serving processes refuses --client-cert-auth: such tests keep one process.
        refused = any(arg.startswith("--client-cert-auth") and not arg.endswith("=false") for arg in self.extra_args)
        if self.binary != "pyetcd" or not count or chosen or refused:
            return []
        return [f"--serving-processes={count}"]

    def environment(self) -> dict[str, str]:
        env = {name: value for name, value in os.environ.items() if not name.startswith("ETCD_")}
        if self.flags_as_environment:
            env.update({"ETCD_" + flag.upper().replace("-", "_"): value
                        for flag, value in self.member_flags().items()})
        env.update(self.extra_environment)
        return env

    def start(self, *, wait: bool = True, timeout: float = 30.0) -> ServerProcess:
        self.process = spawn(self.command(), self.log_path, env=self.environment(), cwd=self.working_dir)
        if wait:
            try:
                self.wait_healthy(timeout)
            except BaseException:
                self.stop()
                raise
        return self

    def etcdctl(self, *args: str, input: str | bytes | None = None,
                timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return run_etcdctl(self.endpoint, *args, input=input, timeout=timeout)

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Until `etcdctl endpoint health` says healthy; fails early if the process dies."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"{self.binary} exited early:\n{self.log_tail()}")
            result = self.etcdctl("endpoint", "health", "--command-timeout=2s", timeout=10)
            last = result.stdout + result.stderr
            # etcdctl 3.4 prints the verdict on stderr.
            if result.returncode == 0 and "is healthy" in last:
                return
            time.sleep(0.2)
        raise TimeoutError(f"{self.binary} not healthy after {timeout}s: {last}\n{self.log_tail()}")

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after `grace` seconds; returns the exit code."""
        if self.process is None:
            return None
        return stop_process(self.process, grace)

    def kill(self) -> int | None:
        """SIGKILL at once, as a crash would: nothing gets flushed or handed over."""
        if self.process is None:
            return None
        return kill_process(self.process)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class JsonWatch:
    """A watch over the JSON gateway (POST /v3/watch streamed by curl): one JSON object per response.

    Unlike `etcdctl watch`, it shows the "created" response, so a test can put only once the watch exists.
    """

    def __init__(self, base_url: str, key: str, max_time: float = 20.0) -> None:
        body = json.dumps({"create_request": {"key": base64.b64encode(key.encode()).decode()}})
        self.process = subprocess.Popen(
            ["curl", "-s", "-N", "-X", "POST", "-d", body, "-m", str(max_time), f"{base_url}/v3/watch"],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, start_new_session=True)

    def next_response(self) -> dict[str, Any]:
        """The next response; curl's -m bounds the wait."""
        assert self.process.stdout is not None
        line = ""
        while not line.strip():
            line = self.process.stdout.readline()
            assert line, "the watch stream ended"
        response: dict[str, Any] = json.loads(line)
        return response

    def wait_created(self) -> dict[str, Any]:
        response = self.next_response()
        assert response["result"].get("created") is True, response
        return response

    def __enter__(self) -> JsonWatch:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        stop_process(self.process)
        if self.process.stdout is not None:
            self.process.stdout.close()


class EtcdctlWatch:
    """`etcdctl watch ...` running in the background; its output lines arrive on a queue."""

    def __init__(self, endpoint: str, *args: str, interactive: bool = False) -> None:
        """`interactive` runs `etcdctl watch -i`: send() it commands such as `watch k` or `progress`."""
        self.process = subprocess.Popen(
            ["etcdctl", f"--endpoints={endpoint}", "watch", *(["-i"] if interactive else []), *args],
            env=etcdctl_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.PIPE if interactive else subprocess.DEVNULL, start_new_session=True)
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            if not line.startswith('{"level":'):  # skip the client library's JSON logs, not `-w json` output
                self._lines.put(line)
        self._lines.put(None)

    def read_lines(self, count: int, timeout: float = 15.0) -> list[str]:
        """The next `count` lines; fewer if the watch ends or `timeout` passes first."""
        lines: list[str] = []
        deadline = time.monotonic() + timeout
        while len(lines) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                break
            lines.append(line)
        return lines

    def send(self, command: str) -> None:
        """One line to an interactive watch."""
        assert self.process.stdin is not None, "not an interactive watch"
        self.process.stdin.write(command.encode() + b"\n")
        self.process.stdin.flush()

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._reader.join(5)  # the pipe reaches EOF once the process is gone
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> EtcdctlWatch:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


StartServer = Callable[..., ServerProcess]
"""`start(binary="etcd"|"pyetcd", name=..., client_port=..., peer_port=..., extra_args=...)`."""
