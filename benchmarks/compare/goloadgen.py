"""The Go load generator (`benchmarks/loadgen`, built by `make loadgen`): one process per run, over
etcd's own gRPC stubs, costing far less CPU per request than the servers it measures.

For each run the harness starts `loadgen` with the run's `LoadSpec` as flags, waits for it to say it
is ready (connections, leases or watches open), hands it the measurement window on the machine-wide
monotonic clock, takes the servers' readings at the window's ends, and reads back the latencies, the
errors and the generator's own CPU inside the window.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path
from typing import IO

from benchmarks.compare.clients import LoadSpec, Window
from benchmarks.compare.loadgen import (
    RESULT_GRACE_S,
    SETUP_TIMEOUT_S,
    LoadError,
    LoadResult,
    WindowProbe,
    sleep_until,
)
from devservers import REPO

LOADGEN_BINARY = REPO / "benchmarks" / "loadgen" / "bin" / "loadgen"


def command(binary: Path, spec: LoadSpec, latencies: Path, procs: int) -> list[str]:
    """`loadgen`'s command line for one run."""
    return [
        str(binary), f"-workload={spec.workload}", f"-endpoints={','.join(spec.endpoints)}",
        f"-clients={spec.clients}", f"-first-client={spec.first_client}",
        f"-clients-per-conn={spec.clients_per_conn}", f"-value-size={spec.value_size}", f"-keyspace={spec.keyspace}",
        f"-seed={spec.seed}", f"-writer-rate={spec.writer_rate!r}", f"-timeout={spec.rpc_timeout_s!r}",
        f"-latencies={latencies}", f"-procs={procs}",
    ]


def read_line(stream: IO[bytes], timeout: float) -> bytes:
    """One line from an unbuffered pipe, or b"" if none came within `timeout` or the writer closed it."""
    line = bytearray()
    deadline = time.monotonic() + timeout
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([stream], [], [], remaining)[0]:
            return b""
        chunk = stream.read(1)
        if not chunk:
            return bytes(line)
        line += chunk
    return bytes(line)


def read_latencies(path: Path) -> array[float]:
    latencies: array[float] = array("d")
    latencies.frombytes(path.read_bytes())
    if sys.byteorder != "little":  # loadgen writes little-endian float64
        latencies.byteswap()
    return latencies


def answer(line: bytes, returncode: int | None, problems: str) -> dict[str, object]:
    """`loadgen`'s JSON line; its {"error": ...} (or a crash) becomes a LoadError."""
    try:
        parsed = json.loads(line)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise LoadError(f"loadgen exited with status {returncode} and said {line[-500:]!r}: {problems}")
    if "error" in parsed or returncode != 0:
        raise LoadError(f"loadgen: {parsed.get('error', parsed)} {problems}".strip())
    return parsed


def tail(stderr: IO[bytes]) -> str:
    """The end of what `loadgen` wrote to stderr (Go's panics and flag errors land there)."""
    stderr.seek(0)
    return stderr.read().decode(errors="replace")[-2000:].strip()


def parse_result(result: dict[str, object]) -> tuple[dict[str, int], float]:
    """The errors by status and the CPU seconds of `loadgen`'s last line."""
    errors, cpu_seconds = result.get("errors"), result.get("cpu_seconds")
    if not isinstance(errors, dict) or not isinstance(cpu_seconds, int | float):
        raise LoadError(f"loadgen's result lacks errors or cpu_seconds: {result}")
    return {str(name): int(count) for name, count in errors.items()}, float(cpu_seconds)


class GoLoadGenerator:
    """Runs `loadgen` once per run; nothing outlives a run, so there is nothing to stop between runs."""

    processes = 1

    def __init__(self, binary: Path = LOADGEN_BINARY, procs: int = 0) -> None:
        """`procs`: cores' worth of threads the generator may run Go code on (0: every core)."""
        if not binary.exists():
            raise FileNotFoundError(f"{binary} is missing: run `make loadgen` first")
        self.binary = binary
        self.procs = procs

    def __enter__(self) -> GoLoadGenerator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def version(self) -> str:
        completed = subprocess.run([str(self.binary), "-version"], capture_output=True, text=True, timeout=10)
        return completed.stdout.strip() or "unknown"

    def run(self, spec: LoadSpec, warmup_s: float, duration_s: float, probe: WindowProbe) -> LoadResult:
        with tempfile.TemporaryDirectory(prefix="pyetcd-loadgen-") as scratch:
            latencies = Path(scratch) / "latencies"
            with open(Path(scratch) / "stderr", "w+b") as stderr:
                process = subprocess.Popen(command(self.binary, spec, latencies, self.procs), stdin=subprocess.PIPE,
                                           stdout=subprocess.PIPE, stderr=stderr, bufsize=0,
                                           start_new_session=True)  # Ctrl-C reaches the harness only
                try:
                    window = self._drive(process, warmup_s, duration_s, probe)
                    output, _ = process.communicate(timeout=RESULT_GRACE_S)
                except subprocess.TimeoutExpired as err:
                    raise LoadError(f"loadgen did not finish within {RESULT_GRACE_S:.0f}s of the window") from err
                except LoadError as err:
                    raise LoadError(f"{err} {tail(stderr)}".strip()) from err
                finally:
                    if process.poll() is None:
                        process.kill()
                        process.wait()
                errors, cpu_seconds = parse_result(answer(output, process.returncode, tail(stderr)))
                return LoadResult(window, read_latencies(latencies), errors, cpu_seconds, self.processes)

    def _drive(self, process: subprocess.Popen[bytes], warmup_s: float, duration_s: float,
               probe: WindowProbe) -> Window:
        """Waits for `loadgen` to be ready, then gives it the window and reads the servers around it."""
        assert process.stdout is not None and process.stdin is not None
        ready = read_line(process.stdout, SETUP_TIMEOUT_S)
        if not ready:
            process.kill()
            process.wait()
            raise LoadError(f"loadgen was not ready within {SETUP_TIMEOUT_S:.0f}s (exit status {process.returncode})")
        answer(ready, 0, "")
        probe.arm()
        now = time.monotonic()
        window = Window(now + warmup_s, now + warmup_s + duration_s)
        process.stdin.write(f"window {window.start!r} {window.end!r}\n".encode())
        process.stdin.flush()
        sleep_until(window.start)
        probe.begin()
        sleep_until(window.end)
        probe.end()
        return window
