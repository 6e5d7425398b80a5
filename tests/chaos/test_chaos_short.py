"""A short chaos run with a fixed seed: every fault kind strikes, and every check must pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.harness import RunConfig, run_chaos
from tests.chaos.history import load_operations
from tests.chaos.linearizability import Verdict, check_history
from tests.chaos.nemesis import FAULTS, NemesisConfig

# Minutes of faults: `make test-chaos` runs these (CI runs them after `make test`).
pytestmark = [pytest.mark.chaos]


# Both ways a member serves its clients: from the member's own process, and from two serving processes that
# hand every call to it (`--serving-processes`); a killed or paused member takes its serving processes along.
@pytest.mark.parametrize("member_flags", [(), ("--serving-processes=2",)], ids=["one-process", "serving-processes-2"])
def test_a_cluster_under_kills_pauses_and_partitions_stays_linearizable_and_consistent(
        tmp_path: Path, member_flags: tuple[str, ...]) -> None:
    # Short faults and pauses, so that two minutes meet every kind of fault at least once.
    nemesis = NemesisConfig(fault_seconds=(2.5, 5.0), quiet_seconds=(1.5, 3.0))
    report = run_chaos(RunConfig(duration=120, seed=20240601, workdir=tmp_path, nemesis=nemesis,
                                 member_flags=member_flags))
    summary = report.summary()
    figures = report.figures()
    assert report.ok, summary
    assert {f.kind for f in report.history.faults} == set(FAULTS), summary
    assert figures["operations"] > 500 and figures["unknown outcome"] > 0, summary
    assert figures["peer connections of unknown opener"] == 0, summary
    assert len(report.checks) == 6
    # The recorded history reads back and checks the same, for study after the run.
    assert check_history(load_operations(tmp_path / "history.jsonl")).verdict is Verdict.LINEARIZABLE
