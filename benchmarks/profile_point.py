"""Profiles every member of a pyetcd cluster under one benchmark point: the cluster and the load are the
benchmark's own (`benchmarks.compare`), py-spy records each member (its child processes included) for
the measured window, and a Markdown summary says where the members' samples went and what each
member's CPU costs per operation.

    .venv/bin/python -m benchmarks.profile_point --workload put --members 3 --clients 256 --out DIR

Everything started here is stopped on the way out, after a failure or Ctrl-C too.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import grpc

from benchmarks.compare import admin
from benchmarks.compare.clients import LoadSpec
from benchmarks.compare.goloadgen import GoLoadGenerator
from benchmarks.compare.loadgen import LoadResult, WindowProbe
from benchmarks.compare.plan import Mode, Point, Workload
from benchmarks.compare.procstats import CLOCK_TICKS
from benchmarks.compare.results import Run
from benchmarks.compare.runner import Outcome, Settings, measure
from benchmarks.compare.servers import cluster, reference, serving_cluster
from devservers import REPO
from etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc

PY_SPY_STOP_S = 60.0  # writing the samples of a long window out takes py-spy a while
SEED = 1

# Subsystems of pyetcd's own packages, by path prefix under the repository; the first match wins.
SUBSYSTEMS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("raft core", ("raft/core/",)),
    ("peer transport", ("raft/transport.py", "raft/peer_traffic.py", "pyetcd/peer_service.py")),
    ("raft driver/node", ("raft/",)),
    ("storage log", ("storage/raftlog/", "storage/etcdwal/")),
    ("MVCC store", ("storage/mvcc/",)),
    ("applier", ("pyetcd/apply.py", "pyetcd/apply_kv.py")),
    ("KV/Watch/Lease services", ("pyetcd/api/", "pyetcd/server", "pyetcd/lessor.py")),
    ("serving processes", ("pyetcd/serving/",)),
    ("client-port front", ("pyetcd/http/front.py", "pyetcd/http/relay_process.py", "pyetcd/http/splice_relay.py",
                           "pyetcd/http/sockmap.py", "pyetcd/relayed_peer.py")),
    ("other pyetcd", ("pyetcd/", "storage/")),
)
LOOP_NATIVE = "event loop's native code (uvloop + grpc aio, not split without --native)"
OUTSIDE = (LOOP_NATIVE, "grpc aio (Cython)", "asyncio/uvloop", "protobuf", "other")
BUCKETS = tuple(name for name, _ in SUBSYSTEMS) + OUTSIDE


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame of a py-spy stack: a function and its file (a .py path, or a native library)."""

    function: str
    file: str

    @property
    def native(self) -> bool:
        return not self.file.endswith(".py")

    @property
    def label(self) -> str:
        return f"{self.function} ({short(self.file)})"


def short(file: str) -> str:
    """A file as a path inside the repository or inside site-packages/the standard library."""
    with contextlib.suppress(ValueError):
        return str(Path(file).relative_to(REPO))
    for marker in ("site-packages/", "/lib/python3"):
        if marker in file:
            return file.split(marker, 1)[1].lstrip("/")
    return file


def parse_frame(text: str) -> Frame:
    """py-spy's `function (file)` (native frames may lack the file)."""
    if text.endswith(")") and " (" in text:
        function, file = text[:-1].rsplit(" (", 1)
        return Frame(function, file.rsplit(":", 1)[0] if file.rsplit(":", 1)[-1].isdigit() else file)
    return Frame(text, "")


LOOP_RUNNERS = ("asyncio/runners.py", "asyncio/base_events.py", "uvloop/__init__.py")
OUTSIDE_MARKERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("grpc aio (Cython)", ("grpc",)),
    ("asyncio/uvloop", ("asyncio", "uvloop", "libuv")),
    ("protobuf", ("protobuf", "_upb", "etcdpb")),
)
SYSTEM = ("libc.so", "libpthread", "ld-linux", "libm.so")
LEAVES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("grpc (Cython/C)", ("grpc",)),
    ("uvloop/libuv", ("uvloop", "libuv")),
    ("protobuf (upb)", ("protobuf", "_upb")),
    ("lmdb", ("lmdb",)),
    ("CPython interpreter (C)", ("libpython", "Python-3", "/include/python3", "<frozen")),
    ("libc (system calls, locks)", SYSTEM),
)


def pyetcd_subsystem(frame: Frame) -> str | None:
    path = short(frame.file)
    return next((name for name, prefixes in SUBSYSTEMS if path.startswith(prefixes)), None)


def bucket(stack: Sequence[Frame], thread: str = "") -> str:
    """The subsystem of the innermost frame from pyetcd's own packages, else what the innermost frame
    that is not the C library belongs to. Frames outside the event loop (the process's entry point,
    which runs the loop) do not count as pyetcd's; a Python stack that ends in the loop's runner is
    the loop's native work, and grpc aio's poller thread is grpc's."""
    if "_poll_wrapper" in thread:
        return "grpc aio (Cython)"
    if stack and stack[-1].file.endswith(LOOP_RUNNERS):
        return LOOP_NATIVE
    first = max((index + 1 for index, frame in enumerate(stack) if frame.file.endswith(LOOP_RUNNERS)), default=0)
    for frame in reversed(stack[first:]):
        subsystem = pyetcd_subsystem(frame)
        if subsystem is not None:
            return subsystem
    for frame in reversed(stack):
        where = f"{frame.file} {frame.function}"
        if any(marker in frame.file for marker in SYSTEM):
            continue
        return next((name for name, markers in OUTSIDE_MARKERS if any(m in where for m in markers)), "other")
    return "other"


def leaf_kind(stack: Sequence[Frame]) -> str:
    """What the innermost frame is: pyetcd's Python, other Python, or which native library."""
    if not stack:
        return "other native"
    leaf = stack[-1]
    if not leaf.native:
        return "pyetcd Python" if pyetcd_subsystem(leaf) is not None else "other Python"
    where = f"{leaf.file} {leaf.function}"
    return next((name for name, markers in LEAVES if any(m in where for m in markers)), "other native")


def thread_kind(process: str, thread: str) -> str:
    """`member: MainThread (event loop)`, `client-port front: grpc-relay`...: the process by its
    command line, the thread by its name without the numbers that tell instances apart."""
    if "relay_process" in process:
        owner = "client-port front"
    elif "pyetcd.serving" in process:
        owner = "serving process"
    else:
        owner = "member"
    name = thread.split("): ", 1)[-1] if "): " in thread else thread
    name = re.sub(r"[-_]?[0-9a-f]{12,}", "", name)
    name = re.sub(r"[-_ ]?\d+(_\d+)?", "", name).strip() or "?"
    return f"{owner}: {name}" + (" (event loop)" if name == "MainThread" else "")


@dataclass
class Profile:
    """One member's samples, counted the ways the summary shows them."""

    samples: int = 0
    buckets: Counter[str] = field(default_factory=Counter)
    self_samples: Counter[str] = field(default_factory=Counter)
    inclusive: Counter[str] = field(default_factory=Counter)
    threads: Counter[str] = field(default_factory=Counter)
    leaves: Counter[str] = field(default_factory=Counter)
    native_leaf: int = 0

    def add(self, stack: list[Frame], thread: str, count: int) -> None:
        self.samples += count
        self.buckets[bucket(stack, thread)] += count
        self.leaves[leaf_kind(stack)] += count
        if stack:
            self.self_samples[stack[-1].label] += count
            self.native_leaf += count if stack[-1].native else 0
        for label in {frame.label for frame in stack}:
            self.inclusive[label] += count
        self.threads[thread] += count


def read_collapsed(lines: Iterator[str]) -> Profile:
    """py-spy's raw (collapsed) output with --threads and --subprocesses: `process...;[child process...;]
    thread...;frames count`, outermost frame first."""
    profile = Profile()
    for line in lines:
        text, _, count = line.rstrip("\n").rpartition(" ")
        if not text or not count.isdigit():
            continue
        parts = text.split(";")
        processes = [part for part in parts if part.startswith("process ")]
        thread = next((part for part in parts if part.startswith("thread (")), "")
        stack = [parse_frame(part) for part in parts if part != thread and not part.startswith("process ")]
        profile.add(stack, thread_kind(processes[-1] if processes else "", thread), int(count))
    return profile


def thread_cpu(pid: int, owner: str = "member") -> dict[tuple[int, str], float]:
    """CPU seconds so far of every thread of the process and of its child processes, keyed by thread id
    and `owner: kind`: the main thread runs the event loop, grpc core names its threads, and Python's
    own threads keep the process's name (they are the log writer, executors and grpc aio's poller)."""
    found: dict[tuple[int, str], float] = {}
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        process_name = Path(f"/proc/{pid}/comm").read_text().strip()
        tids = [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return found
    if "relay_process" in command:
        owner = "client-port front"
    elif "pyetcd.serving" in command:
        owner = "serving process"
    for tid in tids:
        with contextlib.suppress(OSError):  # the thread ended meanwhile
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            name = stat[stat.index("(") + 1:stat.rindex(")")]
            if tid == pid:
                kind = "event loop (main thread)"
            elif name == process_name:
                kind = "Python threads"
            else:
                kind = re.sub(r"[-_ ]?\d+$", "", name)
            found[(tid, f"{owner}: {kind}")] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    for child in children:
        found.update(thread_cpu(int(child), owner))
    return found


class SpyProbe:
    """The benchmark's window probe with py-spy recording every member inside the window."""

    def __init__(self, pids: list[int], outputs: list[Path], rate: int, native: bool, gil: bool) -> None:
        self.inner: WindowProbe | None = None  # the benchmark's own probe, handed over by `SpyingLoadGenerator`
        self.pids = pids
        self.outputs = outputs
        self.rate = rate
        self.native = native
        self.gil = gil
        self.spies: list[subprocess.Popen[bytes]] = []
        self._threads_start: list[dict[tuple[int, str], float]] = []
        self.thread_cpu_s: list[dict[str, float]] = []  # per member: CPU seconds in the window by thread kind

    def arm(self) -> None:
        assert self.inner is not None
        self.inner.arm()

    def begin(self) -> None:
        for pid, output in zip(self.pids, self.outputs, strict=True):
            command = [py_spy(), "record", "--pid", str(pid), "--subprocesses", "--threads", "--format", "raw",
                       "--full-filenames", "--nolineno", "--rate", str(self.rate), "--output", str(output)]
            log = open(output.with_suffix(".log"), "wb")  # noqa: SIM115 - closed with the process below
            command += (["--native"] if self.native else []) + (["--gil"] if self.gil else [])
            self.spies.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
            log.close()
        assert self.inner is not None
        self.inner.begin()
        self._threads_start = [thread_cpu(pid) for pid in self.pids]

    def end(self) -> None:
        assert self.inner is not None
        self.inner.end()
        for pid, start in zip(self.pids, self._threads_start, strict=True):
            used: dict[str, float] = {}
            for (tid, kind), cpu_s in thread_cpu(pid).items():
                used[kind] = used.get(kind, 0.0) + cpu_s - start.get((tid, kind), 0.0)
            self.thread_cpu_s.append(used)
        self.stop()

    def stop(self) -> None:
        """SIGINT makes py-spy write what it sampled; one that hangs is killed."""
        for spy in self.spies:
            if spy.poll() is None:
                spy.send_signal(signal.SIGINT)
        deadline = time.monotonic() + PY_SPY_STOP_S
        for spy in self.spies:
            try:
                spy.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()


class SpyingLoadGenerator:
    """The Go load generator, its window probe wrapped so py-spy records exactly the measured window."""

    processes = 1

    def __init__(self, inner: GoLoadGenerator, spy: SpyProbe) -> None:
        self.inner = inner
        self.spy = spy

    def run(self, spec: LoadSpec, warmup_s: float, duration_s: float, probe: WindowProbe) -> LoadResult:
        self.spy.inner = probe
        try:
            return self.inner.run(spec, warmup_s, duration_s, self.spy)
        finally:
            self.spy.stop()


def py_spy() -> str:
    """py-spy beside this interpreter (the project's venv), else on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise SystemExit("py-spy is missing: run `make install` (it is in pyproject's dev extras)")
    return found


def role(endpoint: str) -> str:
    """leader or follower, as the member's Maintenance.Status says."""
    with grpc.insecure_channel(endpoint) as channel:
        status = rpc_pb2_grpc.MaintenanceStub(channel).Status(rpc_pb2.StatusRequest(), timeout=10)
    return "leader" if status.leader == status.header.member_id else "follower"


@dataclass(frozen=True, slots=True)
class Baseline:
    """The same point on etcd (or on the do-nothing grpc.aio servicer), measured without py-spy."""

    kind: str
    run: Run
    names: list[str]
    roles: list[str]


def baseline(kind: str, point: Point, mode: Mode, loadgen: GoLoadGenerator, base: Path) -> Baseline:
    """One run of `point` with the same seed on a fresh etcd cluster or the reference servicer."""
    target = reference(base) if kind == "reference" else cluster(kind, point.members, base)
    try:
        target.start()
        if point.workload.reads_keyspace:
            admin.prefill(target.endpoints[0])
        run = measure(loadgen, target, point, 1, mode, Settings(processes=1), SEED, Outcome())
        roles = ["-"] if kind == "reference" else [role(endpoint) for endpoint in target.endpoints]
        return Baseline(kind, run, [member.name for member in target.members], roles)
    finally:
        target.stop()


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def commit() -> str:
    completed = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return completed.stdout.strip() or "unknown"


def summary(args: argparse.Namespace, run: Run, roles: list[str], names: list[str], profiles: list[Profile],
            threads: list[dict[str, float]], baselines: list[Baseline], notes: list[str],
            load: tuple[tuple[float, ...], tuple[float, ...]], top: int = 15) -> str:
    cpus = os.cpu_count() or 1
    busy = run.machine_busy_s / (run.duration_s * cpus) if run.duration_s else 0.0
    lines = [
        f"# Profile: {run.point.label}" + (f", {args.serving_processes} serving processes"
                                          if args.serving_processes > 1 else ""),
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit()}, {cpus} cores; load average "
        f"{' / '.join(f'{v:.1f}' for v in load[0])} before, {' / '.join(f'{v:.1f}' for v in load[1])} after; "
        f"machine busy {100 * busy:.0f}% inside the window (whoever used it).",
        f"Go load generator, {args.warmup:g} s warm-up, {args.duration:g} s window; py-spy {args.rate} Hz on every "
        f"member for the window ({'with' if args.native else 'without'} native frames; "
        + ("every thread py-spy finds busy" if args.all_threads else "only the thread holding the interpreter lock")
        + ", so a process's samples are where its interpreter's time goes).",
        f"Command: `.venv/bin/python -m benchmarks.profile_point {' '.join(sys.argv[1:])}`",
        "",
        f"Throughput {run.throughput:,.0f} ops/s; p50 {fmt(run.p50_ms)} ms, p99 {fmt(run.p99_ms)} ms; errors "
        f"{', '.join(f'{name} {count}' for name, count in sorted(run.errors.items())) or 0}; the load generator "
        f"used {run.gen_cpu_s / run.duration_s if run.duration_s else 0:.2f} cores.",
        "",
        "| member | role | CPU s in window | CPU µs/op | samples | leaf in native code |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for name, member_role, cpu_s, profile in zip(names, roles, run.server_cpu_s, profiles, strict=True):
        per_op = f"{cpu_s / run.ops * 1e6:,.0f}" if run.ops else "-"
        lines.append(f"| {name} | {member_role} | {cpu_s:.2f} | {per_op} | {profile.samples:,} | "
                     f"{percent(profile.native_leaf, profile.samples)} |")
    total_cpu = sum(run.server_cpu_s)
    lines += [f"| all | | {total_cpu:.2f} | {total_cpu / run.ops * 1e6 if run.ops else 0:,.0f} | | |", ""]
    if baselines:
        lines += ["The same point right after, same seed, without py-spy:", "",
                  "| server | ops/s | p50 ms | p99 ms | CPU µs/op per member (role) | all members |",
                  "| --- | ---: | ---: | ---: | --- | ---: |"]
        for other in baselines:
            ops = other.run.ops
            members = ", ".join(f"{name} {cpu_s / ops * 1e6 if ops else 0:,.0f} ({member_role})"
                                for name, member_role, cpu_s in zip(other.names, other.roles, other.run.server_cpu_s,
                                                                    strict=True))
            lines.append(f"| {other.kind} | {other.run.throughput:,.0f} | {fmt(other.run.p50_ms)} | "
                         f"{fmt(other.run.p99_ms)} | {members} | "
                         f"{sum(other.run.server_cpu_s) / ops * 1e6 if ops else 0:,.0f} |")
        lines.append("")
    lines += [
              "## Share of samples by bucket", "",
              "The innermost frame from pyetcd's own packages decides the bucket; a stack without one goes by "
              "its innermost frame.", "",
              "| bucket | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names)]
    for name in BUCKETS:
        if any(profile.buckets[name] for profile in profiles):
            lines.append(f"| {name} | " + " | ".join(percent(p.buckets[name], p.samples) for p in profiles) + " |")
    if args.native:
        kinds = sorted({kind for profile in profiles for kind in profile.leaves})
        lines += ["", "## Share of samples by what the innermost frame is", "",
                  "| innermost frame | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names)]
        lines += [f"| {kind} | " + " | ".join(percent(p.leaves[kind], p.samples) for p in profiles) + " |"
                  for kind in sorted(kinds, key=lambda k: -sum(p.leaves[k] for p in profiles))]
    lines += ["", "## CPU by thread (from /proc, inside the window)", "",
              "Per member, each thread's CPU per operation in µs and its share of the member's CPU.", ""]
    for name, used in zip(names, threads, strict=True):
        total = sum(used.values())
        ranked = sorted(used.items(), key=lambda item: -item[1])[:8]
        shares = ", ".join(f"{kind} {cpu_s / run.ops * 1e6 if run.ops else 0:,.0f} µs "
                           f"({100 * cpu_s / total if total else 0:.0f}%)" for kind, cpu_s in ranked if cpu_s > 0)
        lines.append(f"- {name}: {shares}")
    lines += ["", "## Share of samples by thread", ""]
    for name, profile in zip(names, profiles, strict=True):
        shares = ", ".join(f"{thread} {percent(count, profile.samples)}" for thread, count in
                           profile.threads.most_common(8))
        lines.append(f"- {name}: {shares}")
    for title, attribute in (("self", "self_samples"), ("inclusive", "inclusive")):
        lines += ["", f"## Top {top} functions by {title} samples", ""]
        for name, profile in zip(names, profiles, strict=True):
            counter: Counter[str] = getattr(profile, attribute)
            lines += [f"**{name}**", "", "| share | function |", "| ---: | --- |"]
            lines += [f"| {percent(count, profile.samples)} | `{label}` |" for label, count in counter.most_common(top)]
            lines.append("")
    if notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in notes]
    return "\n".join(lines).rstrip() + "\n"


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def profile_point(args: argparse.Namespace) -> Path:
    workload = Workload(args.workload)
    point = Point(args.members, workload, args.clients)
    name = args.name or f"{workload}-m{args.members}-c{args.clients}" + (
        f"-n{args.serving_processes}" if args.serving_processes > 1 else "")
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    py_spy()
    loadgen = GoLoadGenerator()
    load_before = os.getloadavg()
    with contextlib.ExitStack() as stack:
        base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pyetcd-profile-")))
        target = serving_cluster(args.members, base, args.serving_processes, "pyetcd")
        stack.callback(target.stop)
        target.start()
        if workload.reads_keyspace:
            admin.prefill(target.endpoints[0])
        names = [member.name for member in target.members]
        raws = [base / f"{member}.collapsed" for member in names]
        spy = SpyProbe(target.pids, raws, args.rate, args.native, not args.all_threads)
        stack.callback(spy.stop)
        mode = Mode("profile", (point,), rounds=1, warmup_s=args.warmup, duration_s=args.duration,
                    reference_clients=None)
        outcome = Outcome()
        run = measure(SpyingLoadGenerator(loadgen, spy), target, point, 1, mode, Settings(processes=1), SEED,
                      outcome)
        roles = [role(endpoint) for endpoint in target.endpoints]
        profiles = []
        for member, raw in zip(names, raws, strict=True):
            if not raw.exists():
                outcome.notes.append(f"py-spy wrote nothing for {member}: "
                                     f"{raw.with_suffix('.log').read_text(errors='replace')[-500:]}")
                profiles.append(Profile())
                continue
            with open(raw) as lines:
                profiles.append(read_collapsed(lines))
            with open(raw, "rb") as source, gzip.open(out / f"{name}.{member}.collapsed.gz", "wb") as sink:
                shutil.copyfileobj(source, sink)
        target.stop()  # the baselines get the machine to themselves
        baselines = []
        if args.compare:
            kinds = ["etcd"] + (["reference"] if point.members == 1 and workload is Workload.PUT else [])
            baselines = [baseline(kind, point, mode, loadgen, base) for kind in kinds]
    text = summary(args, run, roles, names, profiles, spy.thread_cpu_s, baselines, outcome.notes,
                   (load_before, os.getloadavg()))
    path = out / f"{name}.md"
    path.write_text(text)
    return path


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_point", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", choices=[str(w) for w in Workload], default="put")
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--clients", type=int, default=256)
    parser.add_argument("--serving-processes", type=int, default=1)
    parser.add_argument("--duration", type=float, default=10.0, help="measured window, seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of load before the window")
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--native", action="store_true", help="also sample native frames (Cython, C)")
    parser.add_argument("--all-threads", action="store_true",
                        help="sample every thread py-spy finds busy, not only the one holding the interpreter lock")
    parser.add_argument("--compare", action="store_true",
                        help="then run the same point on etcd (and, for put on 1 member, the do-nothing servicer)")
    parser.add_argument("--name", help="file name of the summary, without .md")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "profiles")
    args = parser.parse_args(argv)
    if args.members < 1 or args.clients < 1 or args.serving_processes < 1 or args.duration <= 0:
        parser.error("--members, --clients and --serving-processes must be at least 1, --duration positive")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        path = profile_point(args)
    except FileNotFoundError as err:
        raise SystemExit(str(err)) from err
    print(path)


if __name__ == "__main__":
    main()
