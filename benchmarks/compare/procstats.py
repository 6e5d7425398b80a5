"""CPU seconds and RSS of a process and its children, read from /proc, and the whole machine's busy time.

The harness reads these around each measurement window so a run reports what each server
and the load generator cost, and how much of the machine other work took meanwhile.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process and its live child processes (pyetcd's client-port
    front) have used so far, all threads included."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces; the fields after its closing ")" are fixed.
    fields = stat[stat.rindex(")") + 2:].split()
    utime, stime = int(fields[11]), int(fields[12])
    total = (utime + stime) / CLOCK_TICKS
    for child in _children(pid):
        with contextlib.suppress(OSError):  # exited meanwhile
            total += cpu_seconds(child)
    return total


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    """A /proc/PID/status size (VmRSS, RssAnon, VmHWM...) summed over the process and its live child
    processes: pyetcd's client-port front is a child of the member and belongs to its cost."""
    total = 0
    with contextlib.suppress(OSError):  # exited meanwhile
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                total = int(line.split()[1]) * 1024
                break
    for child in _children(pid):
        total += rss_bytes(child, field)
    return total


def peak_rss_bytes(pid: int) -> int:
    """The resident set's high-water mark (VmHWM) since start or since the last reset, summed over
    the process and its children (each one's own peak, so an upper bound on the tree's peak)."""
    return rss_bytes(pid, "VmHWM")


def reset_peak_rss(pid: int) -> bool:
    """Restart VmHWM from the current RSS (writing 5 to clear_refs) for the process and its children;
    False where /proc forbids it."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    for child in _children(pid):
        reset_peak_rss(child)
    return True


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (the "cpu" line of /proc/stat)."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is already counted in user)
    busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7]
    return busy / CLOCK_TICKS
