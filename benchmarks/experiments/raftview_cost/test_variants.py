"""The experiment's arithmetic: which flags each variant gets, and medians and ratios against `off`."""

from __future__ import annotations

import pytest

from benchmarks.experiments.raftview_cost.variants import Sample, extra_flags, markdown, summarize


def test_only_the_off_variant_turns_the_view_off() -> None:
    assert extra_flags("off") == ["--enable-raft-view=false"]
    assert extra_flags("idle") == extra_flags("watched") == []
    with pytest.raises(ValueError, match="unknown variant"):
        extra_flags("sometimes")


def test_rows_are_medians_per_variant_relative_to_off_on_the_same_point() -> None:
    samples = [Sample("put m3 c256", "off", ops, 10.0, cpu) for ops, cpu in ((1000, 500), (1100, 520), (900, 480))]
    samples += [Sample("put m3 c256", "idle", ops, 12.0, cpu) for ops, cpu in ((990, 505), (1000, 500))]
    samples += [Sample("put m3 c1", "off", 300, 3.0, None), Sample("put m3 c1", "watched", 270, 3.5, None)]
    rows = {(row.point, row.variant): row for row in summarize(samples)}
    off, idle = rows[("put m3 c256", "off")], rows[("put m3 c256", "idle")]
    assert (off.rounds, off.ops_per_s, off.ops_ratio, off.cpu_us_per_op) == (3, 1000, 1.0, 500)
    assert (idle.rounds, idle.ops_per_s, idle.ops_ratio, idle.ops_range) == (2, 995, 0.995, (990, 1000))
    assert idle.cpu_ratio == pytest.approx(502.5 / 500)
    watched = rows[("put m3 c1", "watched")]
    assert watched.ops_ratio == pytest.approx(0.9) and watched.cpu_ratio is None
    assert ("put m3 c1", "idle") not in rows
    table = markdown(summarize(samples))
    assert "| put m3 c256 | idle | 2 | 995 | 990–1,000 | 0.995 | 12.00 | 502 | 1.005 |" in table
    assert "| put m3 c1 | watched | 1 | 270 | 270–270 | 0.900 | 3.50 | - | - |" in table
