"""The Go load generator, built once per session the way `make bench` builds it, and the skip marker
for the harness's end-to-end runs, which start both servers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from benchmarks.compare.goloadgen import LOADGEN_BINARY
from tests.helpers.servers import REPO


@pytest.fixture(scope="session")
def loadgen_binary() -> Path:
    """`make loadgen` (a no-op when it is up to date; on a fresh machine it installs Go and etcd's sources)."""
    completed = subprocess.run(["make", "-s", "loadgen"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-4000:]
    assert LOADGEN_BINARY.exists()
    return LOADGEN_BINARY
