"""Configuration as etcd takes it: flags, ETCD_* variables, --config-file, limits, logging, refusals.

Every case runs real etcd and pyetcd with the same input; refusals must give the same exit
status and the same message (pyetcd names itself where etcd says `etcd --help`).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from etcdpb.etcdserverpb import rpc_pb2
from tests.helpers.servers import ServerProcess, binary_path, error_lines, free_port

BINARIES = [pytest.param("etcd", id="etcd"),
            pytest.param("pyetcd", id="pyetcd")]
TOO_MANY_OPS = "etcdserver: too many operations in txn request"
TOO_LARGE = "etcdserver: request is too large"
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ ([A-Z]) \| ([\w/]+): (.*)$")


def new_member(binary: str, tmp_path: Path, name: str = "flags", **options: Any) -> ServerProcess:
    return ServerProcess(binary=binary, name=name, data_dir=tmp_path / f"{binary}-{name}.etcd",
                         client_port=free_port(), peer_port=free_port(), **options)


def refusal(binary: str, tmp_path: Path, args: list[str],
            environment: dict[str, str] | None = None) -> tuple[int, list[str]]:
    """Exit status and what the binary said, for a configuration it must refuse at once."""
    member = new_member(binary, tmp_path, extra_args=args, extra_environment=environment or {})
    completed = subprocess.run(member.command(), env=member.environment(), capture_output=True, text=True,
                               timeout=30, stdin=subprocess.DEVNULL)
    said = []
    for line in completed.stderr.splitlines():
        match = LOG_LINE.match(line)
        if match and match.group(1) in "EC":  # etcd's error and fatal log lines
            said.append(f"{match.group(1)} | {match.group(2)}: {match.group(3)}".replace(f"'{binary} --help'",
                                                                                         "'etcd --help'"))
        elif not match and not line.startswith(("[WARNING]", " ", "\t", "Usage", "Try ")) and line.strip():
            said.append(line)  # Go's flag package prints its complaint bare
    return completed.returncode, said[:1]


def txn_script(puts: int) -> str:
    return "\n" + "".join(f"put /t/{n} v\n" for n in range(puts)) + "\n\n"


def failed_with(result: subprocess.CompletedProcess[str], message: str) -> bool:
    return result.returncode != 0 and f"Error: {message}" in error_lines(result.stderr)


REFUSALS = [
    pytest.param(["--bogus-flag"], {}, id="unknown flag"),
    pytest.param(["stray-argument"], {}, id="positional argument"),
    pytest.param(["--max-txn-ops=-1"], {}, id="negative unsigned"),
    pytest.param(["--quota-backend-bytes=lots"], {}, id="not a number"),
    pytest.param(["--strict-reconfig-check=maybe"], {}, id="not a boolean"),
    pytest.param(["--listen-client-urls=localhost"], {}, id="not a URL"),
    pytest.param(["--initial-cluster-state=bogus"], {}, id="not a cluster state"),
    pytest.param(["--heartbeat-interval=500"], {}, id="election timeout under 5 heartbeats"),
    pytest.param(["--election-timeout=60000"], {}, id="election timeout too long"),
    pytest.param(["--auto-compaction-mode=hourly"], {}, id="unknown compaction mode"),
    pytest.param(["--auto-compaction-retention=soon"], {}, id="compaction retention not a duration"),
    pytest.param(["--initial-cluster=other=http://127.0.0.1:1"], {}, id="own name missing from cluster"),
    pytest.param(["--config-file=/no/such/etcd.yaml"], {}, id="config file missing"),
    pytest.param([], {"ETCD_QUOTA_BACKEND_BYTES": "lots"}, id="bad environment value"),
    pytest.param([], {"ETCD_NAME": "shadowed"}, id="environment shadowed by a flag"),
]


@pytest.mark.parametrize(("args", "environment"), REFUSALS)
def test_bad_configuration_is_refused_with_etcds_status_and_words(
        args: list[str], environment: dict[str, str], tmp_path: Path) -> None:
    expected = refusal("etcd", tmp_path, args, environment)
    assert expected[0] != 0 and expected[1], expected
    assert refusal("pyetcd", tmp_path, args, environment) == expected


def test_version_prints_and_exits_0(tmp_path: Path) -> None:
    etcd = subprocess.run([binary_path("etcd"), "--version"], capture_output=True, text=True, timeout=30)
    assert etcd.returncode == 0
    assert etcd.stdout.splitlines()[0] == "etcd Version: 3.4.23"
    pyetcd = subprocess.run([binary_path("pyetcd"), "--version"], capture_output=True, text=True, timeout=30)
    assert pyetcd.returncode == 0
    assert pyetcd.stdout.splitlines()[0].startswith("pyetcd Version: ")
    assert "etcd API compatible with: 3.4.23" in pyetcd.stdout.splitlines()


@pytest.mark.parametrize("binary", BINARIES)
def test_config_file_sets_limits_and_overrides_flags(binary: str, tmp_path: Path) -> None:
    member = new_member(binary, tmp_path)
    config_file = tmp_path / "etcd.yaml"
    settings = {**member.member_flags(), "name": "fromfile", "initial-cluster": f"fromfile={member.peer_url}",
                "max-txn-ops": 3, "max-request-bytes": 1024, "unknown-key": "ignored"}
    config_file.write_text("".join(f"{key}: {json.dumps(value)}\n" for key, value in settings.items()))
    member.extra_args = [f"--config-file={config_file}", "--max-txn-ops=100"]  # the flag is ignored
    with member.start():
        [listed] = json.loads(member.etcdctl("member", "list", "-w", "json").stdout)["members"]
        assert listed["name"] == "fromfile"
        assert member.etcdctl("txn", input=txn_script(3)).stdout.splitlines()[0] == "SUCCESS"
        assert failed_with(member.etcdctl("txn", input=txn_script(4)), TOO_MANY_OPS)
        assert member.etcdctl("put", "/small", input="v" * 900).returncode == 0
        assert failed_with(member.etcdctl("put", "/big", input="v" * 2000), TOO_LARGE)
        # Past the gRPC limit (the request bytes plus 512 KiB) the transport itself refuses.
        huge = member.etcdctl("put", "/huge", input="v" * 600_000)
        size = rpc_pb2.PutRequest(key=b"/huge", value=b"v" * 600_000).ByteSize()
        assert error_lines(huge.stderr) == [
            "Error: rpc error: code = ResourceExhausted desc = grpc: received message larger than max "
            f"({size} vs. {1024 + 512 * 1024})"]


@pytest.mark.parametrize("binary", BINARIES)
def test_etcd_variables_configure_the_member_and_are_logged(binary: str, tmp_path: Path) -> None:
    member = new_member(binary, tmp_path, name="fromenv", flags_as_environment=True,
                        extra_environment={"ETCD_MAX_TXN_OPS": "2", "ETCD_NO_SUCH_SETTING": "x"})
    with member.start():
        [listed] = json.loads(member.etcdctl("member", "list", "-w", "json").stdout)["members"]
        assert listed["name"] == "fromenv"
        assert failed_with(member.etcdctl("txn", input=txn_script(3)), TOO_MANY_OPS)
        log = member.log_path.read_text()
    assert "recognized and used environment variable ETCD_NAME=fromenv" in log
    assert "recognized and used environment variable ETCD_MAX_TXN_OPS=2" in log
    assert "unrecognized environment variable ETCD_NO_SUCH_SETTING=x" in log


@pytest.mark.parametrize("binary", BINARIES)
def test_log_level_error_keeps_info_lines_out(binary: str, tmp_path: Path) -> None:
    member = new_member(binary, tmp_path, extra_args=["--log-level=error"])
    with member.start():
        assert member.etcdctl("put", "k", "v").returncode == 0
    levels = {match.group(1) for line in member.log_path.read_text().splitlines()
              if (match := LOG_LINE.match(line))}
    assert levels <= {"E", "C"}


def test_log_level_debug_shows_debug_lines(tmp_path: Path) -> None:
    member = new_member("pyetcd", tmp_path, extra_args=["--log-level=debug"])
    with member.start():
        assert member.etcdctl("put", "k", "v").returncode == 0
    levels = {match.group(1) for line in member.log_path.read_text().splitlines()
              if (match := LOG_LINE.match(line))}
    assert {"D", "I"} <= levels
