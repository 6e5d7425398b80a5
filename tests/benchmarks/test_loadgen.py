"""Both load generators against real etcd and pyetcd, one short run per workload: each one completes
operations without errors, times them inside the window, and leaves nothing behind.

No timings are asserted: on a shared machine they mean little in a test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.compare.clients import LoadSpec, key
from benchmarks.compare.goloadgen import GoLoadGenerator
from benchmarks.compare.loadgen import LoadError, LoadGenerator, LoadResult
from benchmarks.compare.plan import KEYSPACE, Workload
from tests.helpers.servers import HOST, ServerProcess, StartServer, free_port

WARMUP_S = 0.2
WINDOW_S = 0.6
CLIENTS = 4


class Probe:
    """Notes when the harness reads the servers, which must be around the window, in order."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def arm(self) -> None:
        self.calls.append("arm")

    def begin(self) -> None:
        self.calls.append("begin")

    def end(self) -> None:
        self.calls.append("end")


@pytest.fixture(scope="module", params=[pytest.param("etcd", id="etcd"),
                                        pytest.param("pyetcd", id="pyetcd")])
def server(request: pytest.FixtureRequest, start_module_server: StartServer) -> ServerProcess:
    return start_module_server(request.param)


def spec(workload: Workload, endpoints: tuple[str, ...], seed: int = 7) -> LoadSpec:
    # Two clients per connection, so a run opens several connections to the endpoint.
    return LoadSpec(workload, endpoints, CLIENTS, 0, 256, seed, writer_rate=200.0, rpc_timeout_s=5.0,
                    clients_per_conn=2)


def check_result(result: LoadResult, probe: Probe) -> None:
    assert result.errors == {}
    assert len(result.latencies) > 0
    assert all(latency > 0 for latency in result.latencies)
    assert result.cpu_seconds > 0
    assert probe.calls == ["arm", "begin", "end"]


@pytest.mark.parametrize("workload", list(Workload), ids=str)
def test_go_generator_runs_every_workload(loadgen_binary: Path, server: ServerProcess, workload: Workload) -> None:
    probe = Probe()
    with GoLoadGenerator(loadgen_binary) as generator:
        result = generator.run(spec(workload, (server.endpoint,)), WARMUP_S, WINDOW_S, probe)
    check_result(result, probe)
    assert result.processes == 1
    if workload is Workload.PUT:
        # The read workloads only hit real keys if the generator writes the keys the prefill writes.
        written = server.etcdctl("get", "k", "--prefix", "--keys-only", "--limit=20")
        assert written.returncode == 0, written.stderr
        keys = [line.encode() for line in written.stdout.split()]
        assert keys and all(name == key(int(name[1:])) and int(name[1:]) < KEYSPACE for name in keys), keys
    if workload is Workload.LEASE_KEEPALIVE:
        leases = server.etcdctl("lease", "list", "-w", "json")
        assert leases.returncode == 0, leases.stderr
        assert not json.loads(leases.stdout).get("leases"), "the run's leases were not revoked"


def test_python_generator_still_runs(server: ServerProcess) -> None:
    probe = Probe()
    with LoadGenerator(1) as generator:
        result = generator.run(spec(Workload.PUT, (server.endpoint,)), WARMUP_S, WINDOW_S, probe)
    check_result(result, probe)


def test_go_generator_reports_a_server_it_cannot_reach(loadgen_binary: Path) -> None:
    probe = Probe()
    unreachable = LoadSpec(Workload.PUT, (f"{HOST}:{free_port()}",), 1, 0, 256, 1, rpc_timeout_s=0.5)
    with GoLoadGenerator(loadgen_binary) as generator, pytest.raises(LoadError, match="connecting to"):
        generator.run(unreachable, WARMUP_S, WINDOW_S, probe)
    assert probe.calls == []
