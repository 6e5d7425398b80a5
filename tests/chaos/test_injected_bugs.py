"""The harness earns its keep: a member with a deliberate bug fails the checks it should fail.

Each bug is patched into every member (tests/chaos/buggy_member.py) and meets the same kind
of faults as the clean run in test_chaos_short.py, with a fixed seed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.harness import RunConfig, run_chaos
from tests.chaos.nemesis import NemesisConfig

# Half a minute or more of faults each: `make test-chaos` runs these (CI runs them after `make test`).
pytestmark = [pytest.mark.chaos]


def failed_checks(bug: str, workdir: Path) -> tuple[set[str], str]:
    nemesis = NemesisConfig(fault_seconds=(2.5, 5.0), quiet_seconds=(1.5, 3.0))
    report = run_chaos(RunConfig(duration=30, seed=20240601, workdir=workdir, nemesis=nemesis,
                                 binary=f"pyetcd+{bug}"))
    return {check.name for check in report.checks if not check.ok}, report.summary()


def test_reads_served_without_readindex_are_caught_as_not_linearizable(tmp_path: Path) -> None:
    failed, summary = failed_checks("local-reads", tmp_path)
    # Stale reads leave the store itself intact: only the history gives the bug away.
    assert failed == {"linearizable"}, summary


def test_puts_acknowledged_before_commit_are_caught(tmp_path: Path) -> None:
    failed, summary = failed_checks("ack-before-commit", tmp_path)
    assert {"linearizable", "acknowledged writes on every member"} <= failed, summary
