"""The data-scale report (`datascale.md`), its raw figures (`datascale.json`) and plot (`datascale.png`):
per store, pyetcd beside etcd and the ratio pyetcd / etcd, as the other modes report their points."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from pathlib import Path

from benchmarks.compare.clients import CLIENTS_PER_CONN
from benchmarks.compare.datascale import STORES, DataScaleOutcome, StoreFigures
from benchmarks.compare.plan import Point
from benchmarks.compare.report import MIB, detail_table, errors, number, ops, table, times
from benchmarks.compare.results import Summary, ratio, summarize
from benchmarks.compare.runner import Settings

FigureOf = Callable[[StoreFigures], float | None]

# The measures of the store itself: label, figure, digits.
STORE_MEASURES: tuple[tuple[str, FigureOf, int], ...] = (
    ("keys held once built", lambda f: f.counted_keys, 0),
    ("versions of the first key", lambda f: f.first_key_version, 0),
    ("build s (fill, or compaction)", lambda f: f.build_s, 2),
    ("RSS empty MiB", lambda f: f.rss_empty / MIB, 0),
    ("RSS with the store MiB", lambda f: f.rss_loaded / MIB, 0),
    ("RSS added per key, bytes", lambda f: f.rss_per_key, 0),
    ("peak RSS MiB", lambda f: f.peak_rss / MIB, 0),
    ("db size MiB", lambda f: None if f.db_size is None else f.db_size / MIB, 1),
    ("defrag s (etcdctl defrag)", lambda f: f.defrag_s, 2),
    ("db size after defrag MiB", lambda f: None if f.db_size_defragmented is None else f.db_size_defragmented / MIB, 1),
    ("restart s (start to serving)", lambda f: f.restart_s, 2),
    ("RSS after restart MiB", lambda f: f.rss_restarted / MIB, 0),
    ("RSS added per key after restart, bytes", lambda f: (f.rss_restarted - f.rss_empty) / f.keys, 0),
    ("RSS after restart: anonymous MiB", lambda f: f.rss_restarted_anon / MIB, 0),
)


def store_summaries(outcome: DataScaleOutcome) -> dict[str, dict[tuple[Point, str], Summary]]:
    """store -> (point, server) -> medians over its rounds."""
    return {store: summarize([entry.run for entry in outcome.runs if entry.store == store]) for store in STORES}


def figures_by_store(outcome: DataScaleOutcome) -> dict[tuple[str, str], StoreFigures]:
    return {(figures.store, figures.server): figures for figures in outcome.figures}


def store_cells(outcome: DataScaleOutcome, store: str) -> list[str]:
    plan = outcome.plan
    return [store, f"{plan.store_keys(store):,}", str(plan.store_revisions(store))]


def load_table(outcome: DataScaleOutcome) -> list[str]:
    rows = []
    summaries = store_summaries(outcome)
    for store in STORES:
        for point in outcome.plan.points:
            etcd, pyetcd = summaries[store].get((point, "etcd")), summaries[store].get((point, "pyetcd"))
            if etcd is None or pyetcd is None:
                continue
            rows.append(store_cells(outcome, store) + [
                str(point.workload), str(point.clients), ops(etcd), ops(pyetcd),
                times(ratio(pyetcd.throughput, etcd.throughput)), number(etcd.p99_ms, 2), number(pyetcd.p99_ms, 2),
                times(ratio(pyetcd.p99_ms, etcd.p99_ms)), f"{errors(etcd.errors)} / {errors(pyetcd.errors)}",
                f"{number(etcd.gen_cpu_us_per_op)} / {number(pyetcd.gen_cpu_us_per_op)}",
            ])
    return table(["store", "keys", "revisions/key", "workload", "clients", "etcd ops/s", "pyetcd ops/s",
                  "ops/s ratio", "etcd p99 ms", "pyetcd p99 ms", "p99 ratio", "errors etcd / pyetcd",
                  "gen CPU µs/op etcd / pyetcd"], rows)


def store_table(outcome: DataScaleOutcome) -> list[str]:
    rows = []
    found = figures_by_store(outcome)
    for store in STORES:
        etcd, pyetcd = found.get((store, "etcd")), found.get((store, "pyetcd"))
        if etcd is None or pyetcd is None:
            continue
        for label, figure, digits in STORE_MEASURES:
            mine, theirs = figure(pyetcd), figure(etcd)
            rows.append(store_cells(outcome, store) + [label, number(theirs, digits), number(mine, digits),
                                                       times(ratio(mine, theirs))])
    return table(["store", "keys", "revisions/key", "measure", "etcd", "pyetcd", "ratio"], rows)


def render(outcome: DataScaleOutcome, settings: Settings, context: Mapping[str, str]) -> str:
    plan = outcome.plan
    summaries = store_summaries(outcome)
    lines = [
        "# pyetcd vs etcd: data-scale mode",
        "",
        " · ".join(f"{name}: {value}" for name, value in context.items()),
        "",
        f"One member of each server per store, started fresh and filled by `loadgen fill` (txns of 128 puts, "
        f"several in flight; etcd first, then pyetcd) with {plan.value_size}-byte values. `{STORES[0]}`: "
        f"{plan.keys:,} keys, one revision each. `{STORES[1]}`: {plan.history_keys:,} keys written "
        f"{plan.history_revisions} times each (as many revisions as `{STORES[0]}`). `{STORES[2]}`: that store "
        "after a physical compaction at its last revision. On each store the load runs first (linearizable "
        f"range, then put, keys drawn from the whole store; {plan.rounds} round(s) per server, alternating, each a "
        f"{plan.warmup_s:g}s warm-up then a {plan.duration_s:g}s window, the same seeds for both; one Go "
        f"load-generator process, {CLIENTS_PER_CONN} clients per connection), then `etcdctl defrag` and a "
        "restart are timed once per server. Ratios are pyetcd / etcd: for ops/s higher is better for pyetcd, "
        "for everything else lower is.",
        "",
        "## Load on each store: pyetcd / etcd",
        "",
        *load_table(outcome),
        "",
        "## The store itself: pyetcd / etcd",
        "",
        *store_table(outcome),
        "",
        f"- keys held, versions: read back once the store is built, before anything is measured, so both "
        f"servers are seen to hold the planned store. `{STORES[2]}` is the history store after its put runs, "
        "whose writes (as many as each server managed) are in its versions too; compaction must not change "
        "what each held just before it.",
        "- RSS empty: the member just started, before the fill. RSS with the store: once it is written (or "
        "compacted), before any load. RSS added per key: the difference over the store's keys. Peak RSS: the "
        "high-water mark over the fill (or compaction) and the load runs. RSS after restart: once the restarted "
        "member serves, its index rebuilt from disk; RSS added per key after restart: that less RSS empty, over "
        "the keys; its anonymous part is the heap (the key index among it), the rest the pages of the mapped "
        "database file (bbolt's or LMDB's) the member has touched.",
        "- db size: the backend file as Maintenance.Status reports it (`etcdctl endpoint status`), before and "
        "after `etcdctl defrag`. restart: SIGTERM, then the process started again until a linearizable Range is "
        "answered.",
        "- The put runs add revisions, so a store's later measures see it slightly grown.",
    ]
    for store in STORES:
        if summaries[store]:
            lines += ["", f"## Every load figure: {store}", "", *detail_table(summaries[store])]
    notes = outcome.notes
    if notes:
        lines += ["", "## Problems during the run", "", *(f"- {note}" for note in notes)]
    return "\n".join(lines) + "\n"


PLOTTED_MEASURES = ("RSS with the store MiB", "peak RSS MiB", "RSS after restart MiB", "defrag s (etcdctl defrag)",
                    "restart s (start to serving)", "db size MiB")
SummaryFigure = Callable[[Summary], float | None]


def plot_panels(outcome: DataScaleOutcome) -> list[tuple[str, dict[str, dict[str, float | None]]]]:
    """(title, store -> server -> value) for every panel of datascale.png."""
    summaries = store_summaries(outcome)
    panels: list[tuple[str, dict[str, dict[str, float | None]]]] = []
    load_figures: tuple[tuple[str, SummaryFigure], ...] = (("ops/s", lambda s: s.throughput),
                                                           ("p99 ms", lambda s: s.p99_ms))
    for point in outcome.plan.points:
        for label, of_summary in load_figures:
            panels.append((f"{point.workload} {label}, {point.clients} clients",
                           {store: {server: of_summary(s) for (p, server), s in summaries[store].items() if p == point}
                            for store in STORES}))
    found = figures_by_store(outcome)
    for title, figure, _ in STORE_MEASURES:
        if title in PLOTTED_MEASURES:
            panels.append((title, {store: {server: figure(f) for (name, server), f in found.items() if name == store}
                                   for store in STORES}))
    return panels


def write_datascale_results(out_dir: Path, outcome: DataScaleOutcome, settings: Settings,
                            context: Mapping[str, str], plots: bool) -> Path:
    """Writes datascale.md, datascale.json and (with `plots`) datascale.png; returns the report's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report = out_dir / "datascale.md"
    report.write_text(render(outcome, settings, context))
    raw = {"plan": dataclasses.asdict(outcome.plan), "settings": dataclasses.asdict(settings), "context": context,
           "runs": [{"store": entry.store, **dataclasses.asdict(entry.run)} for entry in outcome.runs],
           "stores": [dataclasses.asdict(figures) for figures in outcome.figures], "notes": outcome.notes}
    (out_dir / "datascale.json").write_text(json.dumps(raw, indent=1) + "\n")
    if plots:
        from benchmarks.compare.plots import by_store

        by_store(plot_panels(outcome), STORES, out_dir / "datascale.png")
    return report
