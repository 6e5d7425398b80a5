"""The etcd-vs-pyetcd harness, end to end in its tiny mode: both servers are started, driven by the
Go load generator with the same put load in alternating rounds, and the report comes out with a ratio
per point and the generator's own CPU per request beside each server.

Nothing here looks at the numbers themselves: on a shared machine they mean little in a test.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.servers import REPO


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, loadgen_binary: Path) -> Path:
    out = tmp_path_factory.mktemp("bench")
    completed = subprocess.run([sys.executable, "-m", "benchmarks.compare", "--mode", "tiny", "--out", str(out)],
                               cwd=REPO, capture_output=True, text=True, timeout=240)
    assert completed.returncode == 0, completed.stderr[-4000:]
    return out


def test_report_has_a_ratio_per_point(tiny_run: Path) -> None:
    report = (tiny_run / "latest.md").read_text()
    header = next(line for line in report.splitlines() if line.startswith("| workload") and "ops/s ratio" in line)
    columns = [cell.strip() for cell in header.strip("|").split("|")]
    rows = [line for line in report.split("## pyetcd / etcd", 1)[1].split("##", 1)[0].splitlines()
            if line.startswith("| put ")]
    assert len(rows) == 1
    cells = dict(zip(columns, (cell.strip() for cell in rows[0].strip("|").split("|")), strict=True))
    assert cells["members"] == "1"
    assert re.fullmatch(r"\d+\.\d\dx", cells["ops/s ratio"])
    assert re.fullmatch(r"\d+\.\d\dx", cells["p99 ratio"])
    assert re.fullmatch(r"[\d,]+ / [\d,]+", cells["gen CPU µs/op etcd / pyetcd"])


def test_report_names_the_go_generator_and_its_cost_per_run(tiny_run: Path) -> None:
    report = (tiny_run / "latest.md").read_text()
    assert re.search(r"load generator: Go \(go[\d.]+\), 1 process", report)
    assert re.search(r"Load generator CPU per operation, median over points: [\d,]+ µs at etcd points \(whose "
                     r"servers used [\d,]+ µs\); [\d,]+ µs at pyetcd points", report)
    reference = report.split("## pyetcd / a do-nothing grpc.aio servicer", 1)[1].split("##", 1)[0]
    assert re.search(r"\| put \| 1 \| 16 \| 256 \| .* \| [\d,]+ / [\d,]+ \|", reference)
    raw = json.loads((tiny_run / "latest.json").read_text())
    assert raw["settings"]["loadgen"] == "go"
    for run in raw["runs"]:
        assert run["gen_processes"] == 1 and run["gen_cpu_s"] > 0, run


def test_servers_alternate_round_by_round_with_the_reference_alongside(tiny_run: Path) -> None:
    runs = json.loads((tiny_run / "latest.json").read_text())["runs"]
    assert [(run["server"], run["round"]) for run in runs] == [
        ("etcd", 1), ("pyetcd", 1), ("pyetcd-serving", 1), ("reference", 1),
        ("etcd", 2), ("pyetcd", 2), ("pyetcd-serving", 2), ("reference", 2)]
    for run in runs:
        assert run["ops"] > 0, run
        assert len(run["server_cpu_s"]) == 1 and len(run["server_peak_rss"]) == 1


def test_serving_processes_are_measured_beside_etcd_pyetcd_and_the_reference(tiny_run: Path) -> None:
    report = (tiny_run / "latest.md").read_text()
    section = report.split("## pyetcd with `--serving-processes 2`", 1)[1].split("##", 1)[0]
    ops = r"[\d,]+(?: \*)?"  # a throughput, marked when the machine was saturated
    row = next(line for line in section.splitlines() if line.startswith("| put | 1 | 16 | 256 |"))
    header = next(line for line in section.splitlines() if line.startswith("| workload"))
    assert row.count("|") == header.count("|")
    assert re.search(rf"\| put \| 1 \| 16 \| 256 \| {ops} \| {ops} \| {ops} \| \d+\.\d\dx \| \d+\.\d\dx \|", row)
    reference = report.split("## pyetcd / a do-nothing grpc.aio servicer", 1)[1].split("##", 1)[0]
    assert re.search(rf"\| put \| 1 \| 16 \| 256 \| pyetcd-serving \| {ops} \| {ops} \| \d+\.\d\dx \|", reference)


def test_plots_are_written(tiny_run: Path) -> None:
    for name in ("throughput.png", "p99_latency.png"):
        assert (tiny_run / name).read_bytes().startswith(b"\x89PNG")
