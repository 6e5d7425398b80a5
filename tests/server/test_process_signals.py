"""SIGTERM and SIGINT end a member as they end etcd's: a notice line, a clean stop, then death by that signal.

etcd's osutil.HandleInterrupts logs `received terminated signal, shutting down...`, runs its
shutdown handlers, and sends itself the signal again with the default action, so the shell sees
143 (SIGTERM) or 130 (SIGINT) and Python's subprocess reports -15 or -2.
"""

from __future__ import annotations

import dataclasses
import re
import signal

import pytest

from tests.helpers.servers import StartServer

STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} ")
SIGNALS = [pytest.param(signal.SIGTERM, "terminated", id="SIGTERM"),
           pytest.param(signal.SIGINT, "interrupt", id="SIGINT")]


@pytest.mark.parametrize("binary", ["etcd", "pyetcd"])
@pytest.mark.parametrize(("signum", "go_name"), SIGNALS)
def test_a_signal_stops_the_member_and_ends_it_with_that_signal(
        start_server: StartServer, binary: str, signum: signal.Signals, go_name: str) -> None:
    server = start_server(binary)
    assert server.etcdctl("put", "k", "before the signal").returncode == 0
    assert server.process is not None
    server.process.send_signal(signum)
    assert server.process.wait(30) == -signum
    lines = [STAMP.sub("", line) for line in server.log_path.read_text(errors="replace").splitlines()]
    assert f"N | pkg/osutil: received {go_name} signal, shutting down..." in lines

    with dataclasses.replace(server).start() as restarted:  # the same member, on the same data dir
        assert restarted.etcdctl("get", "k", "--print-value-only").stdout.strip() == "before the signal"
