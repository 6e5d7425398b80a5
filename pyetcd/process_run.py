"""How a pyetcd command runs its event loop and ends its process: etcd's exit on a signal.

Kept apart from the CLI so that the commands it dispatches to (the L4 gateway) can use it without
importing the CLI back.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys


def exit_like_etcd(status: int) -> int:
    """The process's exit status; a member stopped by a signal (status -signum, as subprocess reports it)
    ends as etcd's does (osutil.HandleInterrupts): killed by that same signal, or exit 0 as PID 1."""
    if status >= 0:
        return status
    if os.getpid() == 1:
        return 0
    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(-status, signal.SIG_DFL)
    os.kill(os.getpid(), -status)
    return 128 - status  # not reached: the default action of SIGTERM and SIGINT ends the process


def run_async(main: asyncio.Future[int] | object) -> int:
    """Run a server command's main coroutine on uvloop, with the collector set up for serving."""
    import uvloop

    from pyetcd.gc_policy import tune_collector

    tune_collector()

    result: int = uvloop.run(main)  # type: ignore[arg-type]
    return result
