"""Ports, binaries and the start and stop of one server process."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PYETCD_BINARY = REPO / ".venv" / "bin" / "pyetcd"
HOST = "127.0.0.1"


_handed_out: set[int] = set()


def free_port() -> int:
    """A port the kernel just handed out and released, so nothing else is bound to it right now.

    The kernel may hand the same released port out again at once, so a port this process has
    already handed out is never returned twice (three members must not share one port).
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def binary_path(binary: str) -> str:
    """Where "pyetcd" (this checkout's venv) or another binary on PATH ("etcd") is."""
    if binary == "pyetcd":
        return str(PYETCD_BINARY)
    found = shutil.which(binary)
    if found is None:
        raise FileNotFoundError(f"{binary} is not installed (make etcd-binaries installs it)")
    return found


def spawn(command: Sequence[str], log_path: Path, *, env: Mapping[str, str] | None = None,
          cwd: Path | None = None, banner: str = "") -> subprocess.Popen[bytes]:
    """Start `command` in its own session (Ctrl-C reaches only its owner, which stops it in order),
    appending its output to `log_path` after `banner`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        if banner:
            log.write(banner.encode())
            log.flush()
        return subprocess.Popen(list(command), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=dict(env) if env is not None else None, cwd=cwd)


def stop_process(process: subprocess.Popen[Any], grace: float = 10.0) -> int:
    """SIGTERM (after SIGCONT, should it be paused), then SIGKILL if it has not exited after `grace`
    seconds; returns the exit code."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGCONT)
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(grace)
    return process.returncode


def kill_process(process: subprocess.Popen[Any], wait: float = 10.0) -> int:
    """SIGKILL at once, as a crash would: nothing gets flushed or handed over; returns the exit code."""
    if process.poll() is None:
        process.kill()
        process.wait(wait)
    return process.returncode

