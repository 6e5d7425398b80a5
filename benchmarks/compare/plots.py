"""PNG plots of the medians: throughput and p99 latency against clients (one panel per workload and
cluster size), and against value size when the sweep ran."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

from benchmarks.compare.plan import (  # noqa: E402
    BASE_VALUE_SIZE,
    REFERENCE,
    SERVERS,
    SERVING,
    SWEEP_CLIENTS,
    Point,
    Workload,
)
from benchmarks.compare.results import Summary  # noqa: E402

Figure = Callable[[Summary], float | None]
STYLE = {"etcd": ("tab:blue", "o"), "pyetcd": ("tab:orange", "s"), SERVING: ("tab:red", "D"),
         REFERENCE: ("tab:gray", "*")}


def write_plots(summaries: Mapping[tuple[Point, str], Summary], out_dir: Path) -> list[Path]:
    """Writes the PNGs into `out_dir`; returns their paths."""
    written = [
        by_clients(summaries, lambda s: s.throughput, "ops/s", out_dir / "throughput.png", log_scale=False),
        by_clients(summaries, lambda s: s.p99_ms, "p99 latency (ms)", out_dir / "p99_latency.png", log_scale=True),
    ]
    sweep = {key: s for key, s in summaries.items()
             if key[0].workload is Workload.PUT and key[0].clients == SWEEP_CLIENTS}
    if len({point.value_size for point, _ in sweep}) > 1:
        written.append(by_value_size(sweep, out_dir / "value_size.png"))
    return written


def log_y(axes: Axes) -> None:
    """A log y-scale (the servers can be orders of magnitude apart) labelled in plain numbers, spanning
    at least a decade so it always carries labels."""
    low, high = axes.dataLim.intervaly
    axes.set_yscale("log")
    if low > 0 and high / low < 10:
        middle = math.sqrt(low * high)
        axes.set_ylim(middle / 3.3, middle * 3.3)
    axes.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    axes.yaxis.set_minor_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}" if round_2_or_5(value)
                                                        else ""))


def round_2_or_5(value: float) -> bool:
    if value <= 0:
        return False
    mantissa = value / 10 ** math.floor(math.log10(value))
    return any(abs(mantissa - digit) < 1e-6 for digit in (2, 5))


def by_clients(summaries: Mapping[tuple[Point, str], Summary], figure: Figure, label: str, path: Path,
               log_scale: bool) -> Path:
    panels = sorted({(point.workload, point.members) for point, _ in summaries
                     if point.value_size == BASE_VALUE_SIZE}, key=lambda p: (list(Workload).index(p[0]), p[1]))
    workloads = list(dict.fromkeys(workload for workload, _ in panels))
    members = sorted({size for _, size in panels})
    fig, axes = plt.subplots(len(workloads), len(members), figsize=(4.8 * len(members), 3.2 * len(workloads)),
                             squeeze=False)
    for row, workload in enumerate(workloads):
        for col, size in enumerate(members):
            axis = axes[row][col]
            axis.set_title(f"{workload}, {size} member{'s' if size > 1 else ''}", fontsize=10)
            for server in (*SERVERS, SERVING, REFERENCE):
                points = sorted((point.clients, figure(s)) for (point, name), s in summaries.items()
                                if name == server and point.workload is workload and point.members == size
                                and point.value_size == BASE_VALUE_SIZE and figure(s) is not None)
                if points:
                    color, marker = STYLE[server]
                    axis.plot([c for c, _ in points], [v for _, v in points], marker=marker, color=color,
                              label=server, linestyle={REFERENCE: "none", SERVING: ":"}.get(server, "-"),
                              markersize=8)
            clients = sorted({point.clients for point, _ in summaries})
            axis.set_xscale("log")
            axis.set_xticks(clients, [str(count) for count in clients])
            axis.xaxis.set_minor_locator(ticker.NullLocator())
            axis.set_xlim(min(clients) / 1.6, max(clients) * 1.6)
            if log_scale:
                log_y(axis)
            else:
                axis.set_ylim(bottom=0)
                axis.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:,.0f}"))
            axis.set_xlabel("clients")
            axis.set_ylabel(label)
            axis.grid(True, which="both", alpha=0.3)
            axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def by_value_size(summaries: Mapping[tuple[Point, str], Summary], path: Path) -> Path:
    figures: list[tuple[Figure, str]] = [(lambda s: s.throughput, "ops/s"), (lambda s: s.p99_ms, "p99 latency (ms)")]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), squeeze=False)
    for axis, (figure, label) in zip(axes[0], figures, strict=True):
        for server in SERVERS:
            for size in sorted({point.members for point, _ in summaries}):
                points = sorted((point.value_size, value) for (point, name), s in summaries.items()
                                if name == server and point.members == size and (value := figure(s)) is not None)
                color, marker = STYLE[server]
                axis.plot([v for v, _ in points], [y for _, y in points], marker=marker, color=color,
                          linestyle="-" if size == 1 else "--", label=f"{server}, {size} member(s)")
        axis.set_xscale("log", base=2)
        log_y(axis)
        axis.set_xlabel(f"value bytes (put, {SWEEP_CLIENTS} clients)")
        axis.set_ylabel(label)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def by_store(panels: Sequence[tuple[str, Mapping[str, Mapping[str, float | None]]]], stores: Sequence[str],
             path: Path) -> Path:
    """Grouped bars, one panel per measure: for each store, etcd's and pyetcd's figure side by side, with
    the ratio pyetcd / etcd written above each pair."""
    columns = 2
    rows = max(1, math.ceil(len(panels) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(5.4 * columns, 3.0 * rows), squeeze=False)
    width = 0.38
    for index, (title, values) in enumerate(panels):
        axis = axes[index // columns][index % columns]
        axis.set_title(title, fontsize=10)
        for offset, server in enumerate(SERVERS):
            heights = [values.get(store, {}).get(server) for store in stores]
            color, _ = STYLE[server]
            axis.bar([position + (offset - 0.5) * width for position in range(len(stores))],
                     [height or 0.0 for height in heights], width, color=color, label=server)
        for position, store in enumerate(stores):
            etcd, pyetcd = values.get(store, {}).get("etcd"), values.get(store, {}).get("pyetcd")
            if etcd and pyetcd is not None:
                axis.annotate(f"{pyetcd / etcd:.2f}x", (position, max(etcd, pyetcd)), ha="center", va="bottom",
                              fontsize=8)
        axis.set_xticks(range(len(stores)), list(stores), fontsize=8)
        axis.margins(y=0.15)
        axis.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:,.4g}"))
        axis.grid(True, axis="y", alpha=0.3)
    for index in range(len(panels), rows * columns):
        axes[index // columns][index % columns].set_visible(False)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(SERVERS), fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
