"""Readable Raft scenarios: each tests/raft/scenarios/*.txt script must print exactly what it says.

Set PYETCD_REWRITE=1 to rewrite the expected outputs from the actual ones, then review the diff.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

from raft.core.interaction import run_script

SCENARIOS = sorted((Path(__file__).parent / "scenarios").glob("*.txt"))


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario_prints_exactly_its_expected_output(path: Path) -> None:
    expected = path.read_text()
    actual = run_script(expected)
    if actual != expected and os.environ.get("PYETCD_REWRITE") == "1":
        path.write_text(actual)
        return
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                            "expected", "actual"))
        pytest.fail(f"{path.name} differs from the actual run (PYETCD_REWRITE=1 rewrites it):\n{diff}")


def test_every_scenario_explains_itself_with_comments() -> None:
    assert SCENARIOS, "no scenarios found"
    for path in SCENARIOS:
        assert path.read_text().startswith("#"), f"{path.name} should open with a comment on what it shows"
