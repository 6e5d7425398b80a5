"""`python -m benchmarks.experiments.raftview_cost`: the same pyetcd cluster three ways (Raft view off,
on with no page open, on with a page open), measured in interleaved rounds by the Go load generator.

All three clusters run at once, so each round measures off, idle and watched back to back (starting
with another of them each round) under the same load and seeds; each cluster's first member leads,
and a lone client talks to it. The summary gives medians and ratios against `off`.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import grpc

from benchmarks.compare import admin
from benchmarks.compare.goloadgen import GoLoadGenerator
from benchmarks.compare.plan import Mode, Point, Workload
from benchmarks.compare.runner import Outcome, Settings, measure
from benchmarks.compare.servers import READY_TIMEOUT_S, Target, cluster, wait_serving
from benchmarks.experiments.raftview_cost.variants import VARIANTS, Sample, extra_flags, markdown, summarize
from etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc

POINTS = (Point(3, Workload.PUT, 1), Point(3, Workload.PUT, 256), Point(3, Workload.RANGE, 256),
          Point(1, Workload.PUT, 256))


class PageFeed:
    """What an open /debug/raft page keeps open: its event stream, read until stopped."""

    def __init__(self, client_endpoint: str) -> None:
        self.url = f"http://{client_endpoint}/debug/raft/events"
        self.bytes_read = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True, name="raft-view-page")

    def __enter__(self) -> PageFeed:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _read(self) -> None:
        with urllib.request.urlopen(self.url, timeout=30) as stream:
            while not self._stop.is_set():
                chunk = stream.read1(65536)
                if not chunk:
                    return
                self.bytes_read += len(chunk)


def lead_from_first_member(target: Target) -> None:
    """Moves leadership to the first member, where a lone client's requests go, so that no variant
    pays (or saves) the forwarding hop by the luck of its election."""
    statuses = []
    for endpoint in target.endpoints:
        with grpc.insecure_channel(endpoint) as channel:
            statuses.append(rpc_pb2_grpc.MaintenanceStub(channel).Status(rpc_pb2.StatusRequest(), timeout=10))
    first, leader = statuses[0].header.member_id, statuses[0].leader
    if first == leader:
        return
    leader_endpoint = next(endpoint for endpoint, status in zip(target.endpoints, statuses, strict=True)
                           if status.header.member_id == leader)
    with grpc.insecure_channel(leader_endpoint) as channel:
        rpc_pb2_grpc.MaintenanceStub(channel).MoveLeader(rpc_pb2.MoveLeaderRequest(targetID=first), timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with grpc.insecure_channel(target.endpoints[0]) as channel:
            status = rpc_pb2_grpc.MaintenanceStub(channel).Status(rpc_pb2.StatusRequest(), timeout=10)
        if status.leader == first:
            return
        time.sleep(0.1)
    raise TimeoutError(f"leadership did not move to {target.members[0].name}")


def start(members: int, base: Path, stack: contextlib.ExitStack) -> dict[str, Target]:
    targets = {}
    for variant in VARIANTS:
        target = cluster("pyetcd", members, base / variant)
        for member in target.members:
            member.command.extend(extra_flags(variant))
        stack.callback(target.stop)
        for member in target.members:
            member.start()
        targets[variant] = target
    deadline = time.monotonic() + READY_TIMEOUT_S
    for target in targets.values():
        for member in target.members:
            wait_serving(member, deadline)
        if members > 1:
            lead_from_first_member(target)
    return targets


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.experiments.raftview_cost", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results.md")
    args = parser.parse_args()
    mode = Mode("raftview", POINTS, args.rounds, args.warmup, args.duration, None)
    settings = Settings(processes=1)
    samples: list[Sample] = []
    outcome = Outcome()
    with contextlib.ExitStack() as stack:
        base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pyetcd-raftview-")))
        loadgen = stack.enter_context(GoLoadGenerator())
        for members in sorted({point.members for point in POINTS}, reverse=True):
            with contextlib.ExitStack() as clusters:
                targets = start(members, base / f"m{members}", clusters)
                feed = clusters.enter_context(PageFeed(targets["watched"].endpoints[0]))
                for target in targets.values():
                    admin.prefill(target.endpoints[0])
                for index, point in enumerate(p for p in POINTS if p.members == members):
                    for round_ in range(1, args.rounds + 1):
                        seed = members * 10_000 + index * 100 + round_
                        # Each round starts with another variant, so none always runs first or last.
                        shift = round_ % len(VARIANTS)
                        order = list(targets.items())[shift:] + list(targets.items())[:shift]
                        for variant, target in order:
                            run = measure(loadgen, target, point, round_, mode, settings, seed, outcome)
                            samples.append(Sample(point.label, variant, run.throughput, run.p99_ms,
                                                  run.server_cpu_us_per_op))
                            print(f"{point.label} {variant} round {round_}: {run.throughput:,.0f} ops/s, "
                                  f"p99 {run.p99_ms} ms, {run.server_cpu_us_per_op} µs CPU/op", flush=True)
                        if point.workload.writes:
                            for target in targets.values():
                                admin.compact(target.endpoints[0])
                print(f"page feed read {feed.bytes_read:,} bytes", flush=True)
    report = markdown(summarize(samples))
    if outcome.notes:
        report += "\n" + "\n".join(f"- {note}" for note in outcome.notes) + "\n"
    args.out.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
