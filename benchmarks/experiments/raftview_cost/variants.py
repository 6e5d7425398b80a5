"""The three ways a pyetcd cluster can carry the Raft view, and the summary of a measured run.

`off` starts members with `--enable-raft-view=false`; `idle` is the default (the page is served but
nobody has it open: the collector is not even hooked to the Raft node); `watched` is the default with
one page's event feed open on the first member, which pulls every member's feed in turn.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

VARIANTS = ("off", "idle", "watched")
BASELINE = "off"


def extra_flags(variant: str) -> list[str]:
    """pyetcd flags that make a member carry `variant`."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}: one of {', '.join(VARIANTS)}")
    return ["--enable-raft-view=false"] if variant == "off" else []


@dataclass(frozen=True, slots=True)
class Sample:
    """One measured window: a point (e.g. "put m3 c256") on one variant."""

    point: str
    variant: str
    ops_per_s: float
    p99_ms: float | None
    cpu_us_per_op: float | None


@dataclass(frozen=True, slots=True)
class Row:
    point: str
    variant: str
    rounds: int
    ops_per_s: float
    ops_range: tuple[float, float]  # the slowest and fastest round: how far rounds alone move
    ops_ratio: float | None  # against the baseline's median, same point
    p99_ms: float | None
    cpu_us_per_op: float | None
    cpu_ratio: float | None


def _median(values: Sequence[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return statistics.median(known) if known else None


def _ratio(value: float | None, base: float | None) -> float | None:
    return None if value is None or not base else value / base


def summarize(samples: Sequence[Sample]) -> list[Row]:
    """Medians per (point, variant), with throughput and CPU per op relative to `off` on the same point."""
    points = list(dict.fromkeys(sample.point for sample in samples))
    rows = []
    for point in points:
        by_variant = {variant: [s for s in samples if s.point == point and s.variant == variant]
                      for variant in VARIANTS}
        base = by_variant[BASELINE]
        base_ops = _median([s.ops_per_s for s in base])
        base_cpu = _median([s.cpu_us_per_op for s in base])
        for variant, measured in by_variant.items():
            if not measured:
                continue
            ops = _median([s.ops_per_s for s in measured]) or 0.0
            cpu = _median([s.cpu_us_per_op for s in measured])
            spread = (min(s.ops_per_s for s in measured), max(s.ops_per_s for s in measured))
            rows.append(Row(point, variant, len(measured), ops, spread, _ratio(ops, base_ops),
                            _median([s.p99_ms for s in measured]), cpu, _ratio(cpu, base_cpu)))
    return rows


def markdown(rows: Sequence[Row]) -> str:
    def num(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    lines = ["| point | raft view | rounds | ops/s | rounds' range | vs off | p99 ms | server CPU µs/op | vs off |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row.point} | {row.variant} | {row.rounds} | {row.ops_per_s:,.0f} | "
                     f"{row.ops_range[0]:,.0f}–{row.ops_range[1]:,.0f} | "
                     f"{num(row.ops_ratio, '.3f')} | {num(row.p99_ms, '.2f')} | {num(row.cpu_us_per_op, ',.0f')} | "
                     f"{num(row.cpu_ratio, '.3f')} |")
    return "\n".join(lines) + "\n"
