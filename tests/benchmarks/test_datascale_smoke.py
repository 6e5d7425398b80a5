"""The data-scale mode end to end on a small store: both servers are filled with the same flat store and
the same long-history store (then compacted), driven with range and put load, defragmented with etcdctl
and restarted, and the report gives every measure for every store beside a ratio.

Nothing here looks at the numbers themselves: on a shared machine they mean little in a test.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.compare.cli import parse_args
from benchmarks.compare.datascale import STORES, WORKLOADS
from benchmarks.compare.datascale_report import STORE_MEASURES
from tests.helpers.servers import REPO

KEYS = 1000
HISTORY_REVISIONS = 10
CLIENTS = 4

@pytest.fixture(scope="module")
def datascale_run(tmp_path_factory: pytest.TempPathFactory, loadgen_binary: Path) -> Path:
    out = tmp_path_factory.mktemp("datascale")
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.compare", "--mode", "datascale", "--keys", str(KEYS),
         "--history-revisions", str(HISTORY_REVISIONS), "--clients", str(CLIENTS), "--rounds", "1",
         "--warmup", "0.2", "--duration", "0.5", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-4000:]
    return out


def rows_of(section: str) -> list[dict[str, str]]:
    """The markdown table of one report section, as dicts keyed by its header."""
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")), strict=True))
            for line in lines[2:]]


def section(report: str, title: str) -> str:
    return report.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


class TestDataScaleRun:
    def test_every_store_gets_range_and_put_load_on_both_servers(self, datascale_run: Path) -> None:
        report = (datascale_run / "datascale.md").read_text()
        rows = rows_of(section(report, "Load on each store: pyetcd / etcd"))
        assert [(row["store"], row["workload"]) for row in rows] == [
            (store, str(workload)) for store in STORES for workload in WORKLOADS]
        for row in rows:
            assert row["clients"] == str(CLIENTS)
            assert re.fullmatch(r"\d+\.\d\dx", row["ops/s ratio"]), row
            assert re.fullmatch(r"\d+\.\d\dx", row["p99 ratio"]), row
            assert row["errors etcd / pyetcd"] == "0 / 0", row
            assert re.fullmatch(r"[\d,]+ / [\d,]+", row["gen CPU µs/op etcd / pyetcd"]), row
        expected_keys = {"flat": KEYS, "history": KEYS // HISTORY_REVISIONS,
                         "history, compacted": KEYS // HISTORY_REVISIONS}
        assert {row["store"]: int(row["keys"].replace(",", "")) for row in rows} == expected_keys

    def test_every_measure_of_every_store_has_both_figures_and_a_ratio(self, datascale_run: Path) -> None:
        report = (datascale_run / "datascale.md").read_text()
        rows = rows_of(section(report, "The store itself: pyetcd / etcd"))
        assert [(row["store"], row["measure"]) for row in rows] == [
            (store, label) for store in STORES for label, _, _ in STORE_MEASURES]
        for row in rows:
            # RSS added per key can come out negative on a tiny store: the allocator's noise is larger.
            assert re.fullmatch(r"-?[\d,.]+", row["etcd"]) and re.fullmatch(r"-?[\d,.]+", row["pyetcd"]), row
            assert re.fullmatch(r"-?\d+\.\d\dx", row["ratio"]), row
        assert "Problems during the run" not in report

    def test_both_servers_held_the_planned_store_and_were_defragmented_and_restarted(
            self, datascale_run: Path) -> None:
        raw = json.loads((datascale_run / "datascale.json").read_text())
        figures = {(entry["store"], entry["server"]): entry for entry in raw["stores"]}
        assert set(figures) == {(store, server) for store in STORES for server in ("etcd", "pyetcd")}
        for (store, _), entry in figures.items():
            revisions = 1 if store == "flat" else HISTORY_REVISIONS
            assert entry["counted_keys"] == KEYS // revisions, entry
            if store == "history, compacted":  # the history store's put runs came before: more versions
                assert entry["first_key_version"] >= revisions, entry
            else:
                assert entry["first_key_version"] == revisions, entry
            assert entry["defrag_s"] is not None and entry["defrag_s"] > 0, entry
            assert entry["restart_s"] > 0 and entry["build_s"] > 0, entry
            assert entry["db_size"] > 0 and entry["db_size_defragmented"] > 0, entry
            assert min(entry["rss_empty"], entry["rss_loaded"], entry["peak_rss"], entry["rss_restarted"],
                       entry["rss_restarted_anon"]) > 0, entry
        for run in raw["runs"]:
            assert run["ops"] > 0 and run["errors"] == {}, run
        assert raw["notes"] == []

    def test_plot_is_written(self, datascale_run: Path) -> None:
        assert (datascale_run / "datascale.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("argv", [
    ["--keys", "1000"],  # the quick mode has no store size to set
    ["--mode", "datascale", "--members", "3"],
    ["--mode", "datascale", "--workloads", "txn"],
    ["--mode", "datascale", "--loadgen", "python"],
    ["--mode", "datascale", "--keys", "0"],
])
def test_flags_that_do_not_apply_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(argv)
    assert exited.value.code == 2
    said = capsys.readouterr().err
    assert "datascale" in said or "positive" in said, said
