"""Private network namespaces for tests that need fixed ports or several hosts on one machine."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress


def netns_available() -> bool:
    """Network namespaces need root and iproute2."""
    return os.geteuid() == 0 and shutil.which("ip") is not None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def _kill_everything_in(namespace: str) -> None:
    listed = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True)
    for pid in listed.stdout.split():
        with suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


@contextmanager
def loopback_namespace(prefix: str = "pyetcd") -> Iterator[str]:
    """A fresh namespace with only `lo` up: its own 127.0.0.1 with every port free."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        _kill_everything_in(name)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


@contextmanager
def bridged_hosts(count: int, subnet: str = "10.231.7") -> Iterator[list[tuple[str, str]]]:
    """`count` hosts (namespaces) on one bridge namespace, each with its own address.

    Yields (namespace, address) pairs. Addresses live only inside these namespaces.
    """
    tag = uuid.uuid4().hex[:6]
    hub = f"pyetcd-hub-{tag}"
    hosts: list[tuple[str, str]] = []
    _ip("netns", "add", hub)
    try:
        _ip("-n", hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", hub, "link", "set", "br0", "up")
        for index in range(count):
            name = f"pyetcd-h{index}-{tag}"
            address = f"{subnet}.{index + 1}"
            _ip("netns", "add", name)
            hosts.append((name, address))
            _ip("link", "add", f"ve{index}{tag}", "type", "veth", "peer", "name", f"vp{index}{tag}")
            _ip("link", "set", f"ve{index}{tag}", "netns", name)
            _ip("link", "set", f"vp{index}{tag}", "netns", hub)
            _ip("-n", hub, "link", "set", f"vp{index}{tag}", "master", "br0")
            _ip("-n", hub, "link", "set", f"vp{index}{tag}", "up")
            _ip("-n", name, "link", "set", "lo", "up")
            _ip("-n", name, "link", "set", f"ve{index}{tag}", "name", "eth0")
            _ip("-n", name, "addr", "add", f"{address}/24", "dev", "eth0")
            _ip("-n", name, "link", "set", "eth0", "up")
        yield hosts
    finally:
        for name, _ in hosts:
            _kill_everything_in(name)
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        subprocess.run(["ip", "netns", "del", hub], capture_output=True)


def cut_off(hosts: list[tuple[str, str]], index: int) -> None:
    """Take a host's link down: the host is cut off from the others, its processes keep running."""
    _ip("-n", hosts[index][0], "link", "set", "eth0", "down")


def reconnect(hosts: list[tuple[str, str]], index: int) -> None:
    _ip("-n", hosts[index][0], "link", "set", "eth0", "up")
