"""The benchmark's /proc readings count a server's child processes (pyetcd's client-port front)."""

from __future__ import annotations

import subprocess
import sys

from benchmarks.compare import procstats

CHILD_MIB = 64
# A parent that starts a child holding CHILD_MIB of touched memory, then waits on stdin.
PARENT = f"""
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c",
    "import sys; block = bytearray({CHILD_MIB} << 20); print('ready', flush=True); sys.stdin.read()"],
    stdin=subprocess.PIPE, stdout=subprocess.PIPE)
child.stdout.readline()
print(child.pid, flush=True)
sys.stdin.read()
child.stdin.close()
child.wait()
"""


def test_rss_and_peak_include_children() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        child_rss = procstats.rss_bytes(child_pid)
        assert child_rss >= CHILD_MIB << 20
        assert procstats.rss_bytes(parent.pid) >= child_rss + (1 << 20)
        assert procstats.peak_rss_bytes(parent.pid) >= procstats.peak_rss_bytes(child_pid) + (1 << 20)
        assert procstats.reset_peak_rss(parent.pid)
        assert procstats.peak_rss_bytes(parent.pid) >= CHILD_MIB << 20
    finally:
        assert parent.stdin is not None
        parent.stdin.close()
        try:
            parent.wait(timeout=10)
        except subprocess.TimeoutExpired:
            parent.kill()
            parent.wait()
