"""benchmarks.profile_point, briefly: one member under a light put load, profiled by py-spy for two
seconds; the summary must give the member's CPU per operation and a bucket table that adds up."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.servers import REPO


def py_spy_can_attach() -> str | None:
    """Why py-spy cannot profile a process here (missing, or ptrace not allowed), or None."""
    spy = Path(sys.executable).parent / "py-spy"
    if not spy.exists():
        return "py-spy is not installed (make install)"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; print(flush=True); time.sleep(30)"],
                               stdout=subprocess.PIPE)
    try:
        assert sleeper.stdout is not None
        sleeper.stdout.readline()  # its interpreter is up
        completed = subprocess.run([str(spy), "dump", "--pid", str(sleeper.pid)], capture_output=True, text=True,
                                   timeout=30)
    finally:
        sleeper.kill()
        sleeper.wait()
    return None if completed.returncode == 0 else f"py-spy cannot attach: {completed.stderr.strip()[-300:]}"


def test_summary_has_cpu_per_op_and_buckets_that_add_up(tmp_path: Path, loadgen_binary: Path) -> None:
    reason = py_spy_can_attach()
    if reason is not None:
        pytest.skip(reason)
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.profile_point", "--workload", "put", "--members", "1", "--clients", "4",
         "--duration", "2", "--warmup", "0.5", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-4000:]
    summary = (tmp_path / "put-m1-c4.md").read_text()
    member = re.search(r"^\| (pyetcd1-1) \| leader \| [\d.]+ \| ([\d,]+) \| ([\d,]+) \|", summary, re.MULTILINE)
    assert member is not None, summary
    assert int(member.group(2).replace(",", "")) > 0 and int(member.group(3).replace(",", "")) > 0
    table = summary.split("## Share of samples by bucket", 1)[1].split("##", 1)[0]
    shares = [float(share) for share in re.findall(r"^\| [^|]+ \| ([\d.]+)% \|$", table, re.MULTILINE)]
    assert len(shares) >= 2 and abs(sum(shares) - 100) < 1, table
    assert (tmp_path / "put-m1-c4.pyetcd1-1.collapsed.gz").stat().st_size > 0
