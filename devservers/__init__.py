"""Local server processes for the tests, the chaos harness and the benchmarks.

One implementation of what they all need to run etcd or pyetcd beside each other on
loopback: a free port, the binary, a process started in its own session with its output
in a log file, and a stop that escalates from SIGTERM to SIGKILL. It sits beside `tests/`
and `benchmarks/` rather than in either, so that neither depends on the other for it.
"""

from devservers.processes import (
    HOST,
    PYETCD_BINARY,
    REPO,
    binary_path,
    free_port,
    kill_process,
    spawn,
    stop_process,
)

__all__ = ["HOST", "PYETCD_BINARY", "REPO", "binary_path", "free_port", "kill_process", "spawn",
           "stop_process"]
