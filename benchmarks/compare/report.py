"""The markdown report: ratios per point first, then the reference row, then every figure."""

from __future__ import annotations

from collections.abc import Mapping

from benchmarks.compare.clients import CLIENTS_PER_CONN
from benchmarks.compare.plan import KEYSPACE, REFERENCE, SERVERS, SERVING, Mode, Point, Workload
from benchmarks.compare.results import Summary, median, ratio, summarize
from benchmarks.compare.runner import Outcome, Settings

MIB = 1024 * 1024
SATURATED = 0.9  # machine busy share from which a throughput is marked as bounded by the machine
GENERATOR_HEAVY = 0.5  # generator CPU per op, as a share of the server's, from which a point is named


def number(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def errors(counts: Mapping[str, int]) -> str:
    if not counts:
        return "0"
    return ", ".join(f"{name} {count}" for name, count in sorted(counts.items()))


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def ops(summary: Summary) -> str:
    """Throughput, marked when every core was busy: then the machine, not the server, set it."""
    return number(summary.throughput) + (" *" if summary.machine_busy_share >= SATURATED else "")


def point_cells(point: Point) -> list[str]:
    return [str(point.workload), str(point.members), str(point.clients), f"{point.value_size}"]


def summary_table(summaries: Mapping[tuple[Point, str], Summary], points: tuple[Point, ...]) -> list[str]:
    rows = []
    for point in points:
        etcd, pyetcd = summaries.get((point, "etcd")), summaries.get((point, "pyetcd"))
        if etcd is None or pyetcd is None:
            continue
        rows.append(point_cells(point) + [
            ops(etcd), ops(pyetcd), times(ratio(pyetcd.throughput, etcd.throughput)),
            number(etcd.p99_ms, 2), number(pyetcd.p99_ms, 2), times(ratio(pyetcd.p99_ms, etcd.p99_ms)),
            f"{errors(etcd.errors)} / {errors(pyetcd.errors)}",
            f"{number(etcd.gen_cpu_us_per_op)} / {number(pyetcd.gen_cpu_us_per_op)}",
        ])
    return table(["workload", "members", "clients", "value B", "etcd ops/s", "pyetcd ops/s", "ops/s ratio",
                  "etcd p99 ms", "pyetcd p99 ms", "p99 ratio", "errors etcd / pyetcd",
                  "gen CPU µs/op etcd / pyetcd"], rows)


def reference_table(summaries: Mapping[tuple[Point, str], Summary], point: Point) -> list[str]:
    """pyetcd at the reference point against the do-nothing servicer; with serving processes too, when
    they were measured there."""
    reference = summaries.get((point, REFERENCE))
    if reference is None:
        return []
    rows = [point_cells(point) + [
        server, ops(reference), ops(own), times(ratio(own.throughput, reference.throughput)),
        number(reference.p99_ms, 2), number(own.p99_ms, 2), times(ratio(own.p99_ms, reference.p99_ms)),
        f"{number(reference.gen_cpu_us_per_op)} / {number(own.gen_cpu_us_per_op)}",
    ] for server in ("pyetcd", SERVING) if (own := summaries.get((point, server))) is not None]
    return table(["workload", "members", "clients", "value B", "server", "reference ops/s", "server ops/s",
                  "ops/s ratio", "reference p99 ms", "server p99 ms", "p99 ratio",
                  "gen CPU µs/op reference / server"], rows) if rows else []


def serving_table(summaries: Mapping[tuple[Point, str], Summary], points: tuple[Point, ...]) -> list[str]:
    """pyetcd with serving processes beside etcd and beside pyetcd's default single process."""
    rows = []
    for point in points:
        etcd, pyetcd, serving = (summaries.get((point, server)) for server in ("etcd", "pyetcd", SERVING))
        if etcd is None or pyetcd is None or serving is None:
            continue
        rows.append(point_cells(point) + [
            ops(etcd), ops(pyetcd), ops(serving), times(ratio(serving.throughput, etcd.throughput)),
            times(ratio(serving.throughput, pyetcd.throughput)), number(pyetcd.p99_ms, 2),
            number(serving.p99_ms, 2), times(ratio(serving.p99_ms, etcd.p99_ms)),
            f"{number(pyetcd.server_cpu_us_per_op)} / {number(serving.server_cpu_us_per_op)}", errors(serving.errors),
        ])
    return table(["workload", "members", "clients", "value B", "etcd ops/s", "pyetcd ops/s", "serving ops/s",
                  "serving / etcd", "serving / pyetcd", "pyetcd p99 ms", "serving p99 ms", "serving p99 / etcd",
                  "server CPU µs/op pyetcd / serving", "errors serving"], rows)


def detail_table(summaries: Mapping[tuple[Point, str], Summary]) -> list[str]:
    rows = []
    for (point, server), s in sorted(summaries.items(), key=lambda item: (item[0][0], order(item[0][1]))):
        rows.append(point_cells(point) + [
            server, ops(s), number(s.p50_ms, 2), number(s.p99_ms, 2), number(s.p999_ms, 2),
            errors(s.errors), number(s.server_cpu_s, 2), number(s.server_cpu_us_per_op, 0),
            number(s.peak_rss / MIB, 0), number(s.gen_cpu_us_per_op, 0), number(s.gen_cpu_share * 100, 0),
            number(s.other_cpu_share * 100, 0), number(s.machine_busy_share * 100, 0),
        ])
    return table(["workload", "members", "clients", "value B", "server", "ops/s", "p50 ms", "p99 ms", "p99.9 ms",
                  "errors", "server CPU s", "server CPU µs/op", "peak RSS MiB", "gen CPU µs/op", "gen CPU %",
                  "other CPU %", "machine busy %"], rows)


def order(server: str) -> int:
    return (*SERVERS, SERVING, REFERENCE).index(server)


def generator_cost(summaries: Mapping[tuple[Point, str], Summary]) -> list[str]:
    """One paragraph: what the load generator cost per operation beside each server, and the points
    where it came close enough to the server's own cost to take a real share of the machine from it."""
    parts = []
    for server in (*SERVERS, SERVING, REFERENCE):
        own = [s for (_, name), s in summaries.items() if name == server]
        if own:
            gen = median([s.gen_cpu_us_per_op for s in own])
            cost = median([s.server_cpu_us_per_op for s in own])
            parts.append(f"{number(gen)} µs at {server} points (whose servers used {number(cost)} µs)")
    if not parts:
        return []
    heavy = sorted({f"{point.label} ({server})" for (point, server), s in summaries.items()
                    if (share := ratio(s.gen_cpu_us_per_op, s.server_cpu_us_per_op)) is not None
                    and share >= GENERATOR_HEAVY})
    verdict = (f"At {', '.join(heavy)} it used at least {GENERATOR_HEAVY:.0%} of the server's CPU per operation: "
               "there it weighs on the result." if heavy else
               f"At every point it used less than {GENERATOR_HEAVY:.0%} of the server's CPU per operation.")
    return [f"Load generator CPU per operation, median over points: {'; '.join(parts)}. {verdict}"]


def load_description(settings: Settings) -> str:
    if settings.loadgen == "python":
        return (f"{settings.processes} Python load-generator processes of grpc.aio clients (which cost more CPU "
                "per request than the servers: compare gen CPU µs/op with server CPU µs/op)")
    return "one Go load-generator process (benchmarks/loadgen) over etcd's own gRPC stubs"


def render(mode: Mode, settings: Settings, outcome: Outcome, context: Mapping[str, str]) -> str:
    """The whole report; `context` says where and on what it ran (machine, versions, date)."""
    summaries = summarize(outcome.runs)
    reference_point = mode.reference_point()
    lines = [
        f"# pyetcd vs etcd: {mode.name} mode",
        "",
        " · ".join(f"{name}: {value}" for name, value in context.items()),
        "",
        f"Each point ran {mode.rounds} rounds per server, alternating (etcd, pyetcd, etcd, pyetcd, ...), "
        f"each a {mode.warmup_s:g}s warm-up then a {mode.duration_s:g}s measured window, with the same seeds "
        f"for both. Figures are medians over the rounds; ratios are pyetcd / etcd (ops/s: higher is better "
        f"for pyetcd, p99: lower is). Load: {load_description(settings)}, closed-loop clients "
        f"spread round-robin over all members, {CLIENTS_PER_CONN} clients per connection; 8-byte keys from a "
        f"{KEYSPACE:,}-key keyspace (every key written before the first read workload).",
        "",
        "## pyetcd / etcd",
        "",
        *summary_table(summaries, mode.points),
        "",
        f"`*`: every core was at least {SATURATED:.0%} busy in the median window (servers, load generator and "
        "anything else on the machine), so the machine rather than that server set the pace.",
        "",
        *generator_cost(summaries),
    ]
    if reference_point is not None and (reference := reference_table(summaries, reference_point)):
        lines += [
            "",
            "## pyetcd / a do-nothing grpc.aio servicer",
            "",
            "The reference answers every Put at once with a fixed response (same gRPC stack and event loop as "
            "pyetcd, same load generator), measured in the same rounds: the floor every request to one Python "
            "process pays, so pyetcd / reference is how close pyetcd comes to the most one such process "
            "could do here.",
            "",
            *reference,
        ]
    if mode.serving_points and (serving := serving_table(summaries, mode.serving_points)):
        lines += [
            "",
            f"## pyetcd with `--serving-processes {settings.serving_processes}`",
            "",
            f"A third cluster, `{SERVING}`, whose members each serve their clients from "
            f"{settings.serving_processes} serving processes that hand the calls to the member's Raft process "
            "(README, \"Serving processes\"), measured in the same rounds right after pyetcd at these points; "
            "server CPU counts every process of a member.",
            "",
            *serving,
        ]
    lines += [
        "",
        "## Every figure",
        "",
        *detail_table(summaries),
        "",
        "## Reading the figures",
        "",
        f"- `{Workload.WATCH}`: clients are watchers on one prefix while a writer puts under it at "
        f"{settings.watch_put_rate:g}/s; ops/s are events delivered per second (all watchers), latencies run "
        "from the put being sent to the event arriving. A server that keeps up delivers watchers x rate events/s; "
        "more means it was still working off a backlog from the warm-up, less that it fell behind.",
        f"- `{Workload.LEASE_KEEPALIVE}`: one lease and one keep-alive stream per client; an op is one "
        f"keep-alive round trip. `{Workload.TXN}`: compare mod_revision, then put. `{Workload.MIXED}`: 90% "
        "linearizable range, 10% put.",
        "- errors: gRPC status counts over the whole run, warm-up included; nothing is retried.",
        "- server CPU s: all members together, inside the window; server CPU µs/op divides it by the ops. "
        "peak RSS: the largest member's high-water mark over the run.",
        "- gen CPU µs/op: the load generator's own CPU per operation (all its threads, inside the window); "
        "it should stay well below server CPU µs/op, or the generator rather than the server is measured; "
        "gen CPU %: its share of all cores; "
        "other CPU %: the share taken by everything else on the machine (a noisy neighbour shows here); "
        "machine busy %: all of it together.",
    ]
    if outcome.notes:
        lines += ["", "## Problems during the run", "", *(f"- {note}" for note in outcome.notes)]
    return "\n".join(lines) + "\n"
