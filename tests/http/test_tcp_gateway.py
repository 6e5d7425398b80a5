"""`pyetcd gateway start`: connections go round robin to the endpoints that answer; dead ones are skipped."""

from __future__ import annotations

import re
import subprocess
import time

from tests.helpers.servers import HOST, PYETCD_BINARY, StartServer, free_port, run_etcdctl
from tests.http.httpget import http_get


def test_gateway_round_robins_over_live_endpoints_and_skips_dead_ones(start_server: StartServer) -> None:
    etcd, pyetcd = start_server("etcd", name="gw1"), start_server("pyetcd", name="gw2")
    dead = f"{HOST}:{free_port()}"
    listen = f"{HOST}:{free_port()}"
    gateway = subprocess.Popen([str(PYETCD_BINARY), "gateway", "start", f"--listen-addr={listen}",
                                f"--endpoints={dead},{etcd.endpoint},{pyetcd.endpoint}"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        while run_etcdctl(listen, "endpoint", "health").returncode != 0:
            assert time.monotonic() < deadline and gateway.poll() is None, "the gateway never answered"
            time.sleep(0.2)
        served_by = []
        for _ in range(4):  # one connection each: /metrics says which member answered
            answer = http_get(f"http://{listen}/metrics")
            assert answer.status == 200, answer
            served_by.append(re.search(rb'etcd_server_id\{server_id="([0-9a-f]+)"\}', answer.body).group(1))
        assert len(set(served_by)) == 2, served_by  # both live members, never the dead one
        assert all(a != b for a, b in zip(served_by, served_by[1:], strict=False)), served_by  # round robin
    finally:
        gateway.terminate()
        try:
            output, _ = gateway.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            gateway.kill()
            output, _ = gateway.communicate(timeout=10)
    assert '"msg":"ready to proxy client requests"' in output  # etcd's gateway logs with zap's production JSON
    assert f'"msg":"deactivated endpoint","address":"{dead}"' in output
