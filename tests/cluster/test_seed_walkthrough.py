"""The user's seed tutorial, step by step with the real etcdctl, against pyetcd.

The tutorial uses fixed ports (2379, 12380, ...), so it runs inside a private network
namespace where those ports are certainly free.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from tests.cluster.netns import loopback_namespace, netns_available

REPO = pathlib.Path(__file__).resolve().parents[2]
WALKTHROUGH = REPO.parent / "shared" / "acceptance" / "seed-walkthrough.sh"
PYETCD = pathlib.Path(sys.executable).parent / "pyetcd"

pytestmark = [
    pytest.mark.skipif(not netns_available(), reason="needs root and iproute2 for a network namespace"),
    pytest.mark.skipif(not WALKTHROUGH.exists(), reason=f"the acceptance script is not at {WALKTHROUGH}"),
]


def test_seed_walkthrough_passes_every_step_against_pyetcd() -> None:
    with loopback_namespace("pyetcd-seed") as namespace:
        result = subprocess.run(
            ["ip", "netns", "exec", namespace, "bash", str(WALKTHROUGH)],
            env={**os.environ, "ETCD_BIN": str(PYETCD)}, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    summary = [line for line in result.stdout.splitlines() if line.startswith("seed-walkthrough:")]
    assert summary, output
    assert summary[-1] == "seed-walkthrough: 19 passed, 0 failed", output
    assert result.returncode == 0, output
