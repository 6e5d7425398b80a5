"""The Python load generator (`--loadgen python`): worker processes, spawned once, that each run a
share of every run's clients. It costs more CPU per request than the servers it measures, so `make
bench` uses the Go one (`goloadgen.py`); this one is kept to compare with numbers taken before.

The parent hands each worker a `LoadSpec`, waits until all of them have their connections and
streams open, then gives all the same measurement window (after a warm-up) on the machine-wide
monotonic clock, so every share starts and stops together.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
import time
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Protocol

import uvloop

from benchmarks.compare.clients import LoadSession, LoadSpec, Window

READY = "ready"
ABORT = "abort"
SETUP_TIMEOUT_S = 120.0
RESULT_GRACE_S = 60.0


class LoadError(RuntimeError):
    """A worker could not set up or run its share (the server refused or failed)."""


class LoadGeneratorLost(RuntimeError):
    """A worker died or stopped answering: the pool can no longer be trusted with another run."""


@dataclass(frozen=True, slots=True)
class WorkerFailure:
    message: str


@dataclass(frozen=True, slots=True)
class WorkerResult:
    latencies: array[float]
    errors: dict[str, int]
    cpu_seconds: float


@dataclass(frozen=True, slots=True)
class LoadResult:
    """Everything the workers measured in one run, merged."""

    window: Window
    latencies: array[float]  # seconds, one per operation completed inside the window
    errors: dict[str, int]  # gRPC status name -> count, over the whole run
    cpu_seconds: float  # all workers, inside the window
    processes: int


class WindowProbe(Protocol):
    """Readings the parent takes around the window (the servers' CPU and memory)."""

    def arm(self) -> None:
        """Just before the load starts (warm-up included)."""

    def begin(self) -> None:
        """At the window's start."""

    def end(self) -> None:
        """At the window's end."""


class Generator(Protocol):
    """What the runner needs of a load generator: the Go one (`goloadgen.py`) or this module's pool."""

    processes: int

    def run(self, spec: LoadSpec, warmup_s: float, duration_s: float, probe: WindowProbe) -> LoadResult:
        """One run of `spec`: warm-up, then the measured window, with `probe` read around it."""
        ...


def worker_main(conn: Connection) -> None:
    """A worker's whole life: one event loop serving run after run until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # on Ctrl-C the parent stops its workers itself
    uvloop.run(serve(conn))


async def serve(conn: Connection) -> None:
    while True:
        try:
            message = await asyncio.to_thread(conn.recv)
        except EOFError:
            return  # the parent is gone
        if not isinstance(message, LoadSpec):
            return
        await run_share(conn, message)


async def run_share(conn: Connection, spec: LoadSpec) -> None:
    session = LoadSession(spec)
    try:
        try:
            await session.setup()
        except Exception as err:  # reported to the parent, which stops the whole run
            conn.send(WorkerFailure(f"setting up {spec.workload} on {spec.endpoints}: {err!r}"))
            return
        conn.send(READY)
        window = await asyncio.to_thread(conn.recv)
        if not isinstance(window, Window):
            return
        try:
            recorder, cpu = await session.run(window)
        except Exception as err:
            conn.send(WorkerFailure(f"running {spec.workload}: {err!r}"))
            return
        conn.send(WorkerResult(recorder.latencies, dict(recorder.errors), cpu))
    finally:
        await session.close()


def shares(spec: LoadSpec, processes: int) -> list[LoadSpec]:
    """Splits `spec.clients` as evenly as possible over at most `processes` workers; a watch
    writer runs in the first one only."""
    specs: list[LoadSpec] = []
    first = spec.first_client
    for index in range(processes):
        clients = spec.clients // processes + (1 if index < spec.clients % processes else 0)
        writer_rate = spec.writer_rate if index == 0 else 0.0
        if clients == 0 and writer_rate == 0:
            continue
        specs.append(LoadSpec(spec.workload, spec.endpoints, clients, first, spec.value_size,
                              spec.seed * 1000 + index, writer_rate, spec.rpc_timeout_s, spec.clients_per_conn))
        first += clients
    return specs


class LoadGenerator:
    """A pool of load-generator processes; use as a context manager so they always stop."""

    def __init__(self, processes: int) -> None:
        context = multiprocessing.get_context("spawn")  # grpc must not be inherited through fork
        self.processes = processes
        self._workers: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []
        try:
            for number in range(processes):
                ours, theirs = context.Pipe()
                process = context.Process(target=worker_main, args=(theirs,), name=f"loadgen-{number}",
                                          daemon=True)
                process.start()
                theirs.close()
                self._workers.append((process, ours))
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> LoadGenerator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def run(self, spec: LoadSpec, warmup_s: float, duration_s: float, probe: WindowProbe) -> LoadResult:
        specs = shares(spec, self.processes)
        active = [conn for _, conn in self._workers[:len(specs)]]
        for conn, share in zip(active, specs, strict=True):
            conn.send(share)
        replies = [self._receive(conn, SETUP_TIMEOUT_S) for conn in active]
        failures = [reply for reply in replies if isinstance(reply, WorkerFailure)]
        if failures:
            for conn, reply in zip(active, replies, strict=True):
                if reply == READY:
                    conn.send(ABORT)
            raise LoadError("; ".join(failure.message for failure in failures))
        probe.arm()
        now = time.monotonic()
        window = Window(now + warmup_s, now + warmup_s + duration_s)
        for conn in active:
            conn.send(window)
        sleep_until(window.start)
        probe.begin()
        sleep_until(window.end)
        probe.end()
        results = [self._receive(conn, RESULT_GRACE_S) for conn in active]
        failures = [result for result in results if isinstance(result, WorkerFailure)]
        if failures:
            raise LoadError("; ".join(failure.message for failure in failures))
        return merge(window, [result for result in results if isinstance(result, WorkerResult)])

    def _receive(self, conn: Connection, timeout: float) -> object:
        if not conn.poll(timeout):
            raise LoadGeneratorLost(f"a load-generator process did not answer within {timeout:.0f}s")
        try:
            return conn.recv()
        except EOFError as err:
            raise LoadGeneratorLost("a load-generator process died") from err

    def close(self) -> None:
        for _process, conn in self._workers:
            with contextlib.suppress(OSError):  # already gone
                conn.send(None)
        for process, conn in self._workers:
            process.join(5)
            if process.is_alive():
                process.terminate()
                process.join(5)
            conn.close()
        self._workers.clear()


def merge(window: Window, results: Sequence[WorkerResult]) -> LoadResult:
    latencies: array[float] = array("d")
    errors: Counter[str] = Counter()
    for result in results:
        latencies.extend(result.latencies)
        errors.update(result.errors)
    return LoadResult(window, latencies, dict(errors), sum(r.cpu_seconds for r in results), len(results))


def sleep_until(deadline: float) -> None:
    time.sleep(max(0.0, deadline - time.monotonic()))
