"""Runs one pyetcd member as a core process plus K front processes sharing its client port.

`python -m benchmarks.experiments.front_processes [--fronts K] [--admin-url URL] [--log-dir DIR] <etcd flags>`

The etcd flags are pyetcd's own; the fronts take over --listen-client-urls and the core serves
the full API on the admin URL (a free loopback port unless given). Each process runs in its own
session with its output in DIR/<name>.log (a fresh temporary directory unless given), as the tests
and benchmarks start servers (devservers). SIGTERM or Ctrl-C stops the fronts, then the core; if any
of them exits, the others are stopped too.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from devservers import HOST, free_port, spawn, stop_process
from pyetcd.config import ConfigError, parse_server_args
from pyetcd.urls import host_port

PACKAGE = "benchmarks.experiments.front_processes"
STOP_GRACE_S = 10.0
POLL_S = 0.2


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    """One process of the member: a name for logs and its command line."""

    name: str
    argv: list[str]


def member_processes(etcd_args: Sequence[str], fronts: int, socket_dir: Path, admin_url: str,
                     front_args: Sequence[str] = ()) -> list[ProcessSpec]:
    """The core first, then the fronts; the fronts listen where etcd's flags say clients connect.
    With no fronts the core serves those addresses itself, through the same batching."""
    config = parse_server_args(list(etcd_args))
    if config is None:
        raise ConfigError("the etcd flags only asked for help or the version")
    addresses = [host_port(url) for url in config.listen_client_urls]
    socket = socket_dir / f"{config.name}.batch.sock"
    serving = [f"--batch-socket={socket}"] if fronts else [f"--listen-batched={a}" for a in addresses]
    core = ProcessSpec(f"{config.name}-core", [
        sys.executable, "-m", f"{PACKAGE}.core", *serving, f"--admin-url={admin_url}", *etcd_args])
    listens = [f"--listen={address}" for address in addresses]
    return [core] + [ProcessSpec(f"{config.name}-front{number}",
                                 [sys.executable, "-m", f"{PACKAGE}.front", *listens, f"--core={socket}",
                                  *front_args])
                     for number in range(1, fronts + 1)]


def stop_all(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    """Fronts first (last started), so no client call reaches a core that is going away."""
    for process in reversed(processes):
        stop_process(process, STOP_GRACE_S)


def stop_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds into the `finally` that stops the children


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {PACKAGE}", description=__doc__)
    parser.add_argument("--fronts", type=int, default=2,
                        help="front processes (default 2; 0: the core batches by itself)")
    parser.add_argument("--admin-url", help="the core's own client URL (default: a free loopback port)")
    parser.add_argument("--max-in-flight", type=int, default=1, help="batches a front keeps at the core")
    parser.add_argument("--log-dir", type=Path, help="where each process's <name>.log goes (default: a new "
                                                     "temporary directory)")
    args, etcd_args = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    admin_url = args.admin_url or f"http://{HOST}:{free_port()}"
    signal.signal(signal.SIGTERM, stop_on_signal)
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="pyetcd-front-") as socket_dir:
        try:
            specs = member_processes(etcd_args, args.fronts, Path(socket_dir), admin_url,
                                     [f"--max-in-flight={args.max_in_flight}"])
        except ConfigError as err:
            print(f"error verifying flags, {err}", file=sys.stderr)
            return 1
        log_dir: Path = args.log_dir or Path(tempfile.mkdtemp(prefix="pyetcd-front-logs-"))
        print(f"core admin URL {admin_url}; {args.fronts} front(s); logs in {log_dir}", file=sys.stderr,
              flush=True)
        try:
            processes.extend(spawn(spec.argv, log_dir / f"{spec.name}.log") for spec in specs)
            while all(process.poll() is None for process in processes):
                time.sleep(POLL_S)
            return next(process.returncode for process in processes if process.returncode is not None)
        except KeyboardInterrupt:
            return 130
        finally:
            stop_all(processes)


if __name__ == "__main__":
    sys.exit(main())
