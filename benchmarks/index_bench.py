"""In-process timings and heap cost of the MVCC key index (storage/mvcc/index.py), no server involved.

Measures what issue 14 asks of the index as the keyspace grows: rebuilding it on restart (keys replayed in
random and in sorted order, as MvccStore._load replays them), a put of a new key into the largest index, a
range over a 1,000-key prefix, and the traced heap bytes per key with one and with ten revisions. Times are
the process's CPU seconds, not wall clock: on a shared machine they say what the index costs, not the load.

    .venv/bin/python -m benchmarks.index_bench [--sizes 100000,200000,400000,1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import functools
import gc
import random
import statistics
import time
import tracemalloc
from collections.abc import Callable

from storage.mvcc.index import TreeIndex
from storage.mvcc.revision import Revision


def _keys(n: int) -> list[bytes]:
    """Keys shaped like loadgen's (``k`` and a zero-padded number), 1,000 per ``/``-separated prefix."""
    return [b"k%04d/%07d" % (i // 1000, i) for i in range(n)]


def _build(keys: list[bytes]) -> TreeIndex:
    """Replay one put per key the way the store replays its revisions on open."""
    index = TreeIndex()
    for main, key in enumerate(keys, start=1):
        index.restore(key, Revision(main, 0), main, 1, False)
    index.range(b"", b"", len(keys))  # the first ordered read: any deferred ordering work happens here
    return index


def _timed(fn: Callable[[], object]) -> float:
    gc.collect()
    start = time.process_time()
    fn()
    return time.process_time() - start


def _median_range(samples: list[float]) -> str:
    return f"{statistics.median(samples):.2f} ({min(samples):.2f}-{max(samples):.2f})"


def bench_build(sizes: list[int], repeat: int) -> None:
    print("| keys | build, random order s | build, sorted order s |")
    print("| ---: | ---: | ---: |")
    for n in sizes:
        ordered = _keys(n)
        shuffled = ordered[:]
        random.Random(n).shuffle(shuffled)
        rand = [_timed(functools.partial(_build, shuffled)) for _ in range(repeat)]
        srt = [_timed(functools.partial(_build, ordered)) for _ in range(repeat)]
        print(f"| {n:,} | {_median_range(rand)} | {_median_range(srt)} |")


def bench_ops(n: int, repeat: int) -> None:
    keys = _keys(n)
    random.Random(1).shuffle(keys)
    index = _build(keys)
    rev = n + 1
    new_keys = [b"k%04d/%07dx" % (i % (n // 1000), i) for i in range(0, 10_000)]
    put_us: list[float] = []
    for r in range(repeat):
        batch = new_keys[r * 3000:(r + 1) * 3000]
        start = time.process_time()
        for key in batch:
            index.put(key, Revision(rev, 0))
            rev += 1
        put_us.append((time.process_time() - start) / len(batch) * 1e6)
    prefix = b"k%04d/" % (n // 2000)
    end = prefix[:-1] + b"0"
    range_ms: list[float] = []
    for _ in range(repeat):
        start = time.process_time()
        found = index.range(prefix, end, rev)
        range_ms.append((time.process_time() - start) * 1e3)
    get_us: list[float] = []
    probe = keys[:10_000]
    for _ in range(repeat):
        start = time.process_time()
        for key in probe:
            index.get(key, rev)
        get_us.append((time.process_time() - start) / len(probe) * 1e6)
    print(f"\nindex of {n:,} keys (built in random order):")
    print(f"- put of a new key: {_median_range(put_us)} us")
    print(f"- get of one key: {_median_range(get_us)} us")
    print(f"- range over a prefix of {len(found):,} keys: {_median_range(range_ms)} ms")


def bench_memory(n: int) -> None:
    keys = _keys(n)
    random.Random(2).shuffle(keys)
    key_bytes = sum(len(k) + 33 for k in keys)  # a bytes object is 33 bytes plus its length
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    index = _build(keys)
    single = tracemalloc.get_traced_memory()[0] - base
    rev = n + 1
    for _ in range(9):
        for key in keys:
            index.put(key, Revision(rev, 0))
            rev += 1
    ten = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    print(f"\ntraced heap of an index of {n:,} keys (key objects, {key_bytes / n:.0f} B/key, are in the figures):")
    print(f"- one revision per key: {single / n:.0f} B/key")
    print(f"- ten revisions per key: {ten / n:.0f} B/key ({(ten - single) / n / 9:.0f} B per further revision)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,200000,400000,1000000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory-keys", type=int, default=200_000)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    bench_build(sizes, args.repeat)
    bench_ops(max(sizes), args.repeat)
    bench_memory(args.memory_keys)


if __name__ == "__main__":
    main()
