"""How a pyetcd server process sets up the interpreter's cyclic garbage collector.

CPython's default young-generation threshold (700 net allocations) runs a collection every few
milliseconds under load. A request in flight at 256 clients lives for tens of milliseconds, so its
objects survive two young collections and are promoted to the oldest generation; once those
promotions reach a quarter of that generation a full collection runs, and a full collection walks
every tracked object, the key index's one object per key included. Measured on one member holding
100,000 keys under 256 putting clients: about one full collection every 1.3 s, each pausing the
event loop for 100-400 ms, about a tenth of the loop's time (benchmarks/README.md, "The garbage
collector"). Two changes keep those walks rare and short:

- a larger young threshold, so that most request objects die (by reference counting) before a young
  collection sees them and are never promoted;
- freezing the heap once the member is ready: what start-up built (modules, the key index rebuilt
  from the store, the Raft log) moves to the permanent generation and no later collection walks it.
  Frozen objects are still freed by reference counting; only a cycle among them would never be
  collected, which start-up's long-lived structures do not form.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000
"""Net allocations between young collections (CPython's default: 700). A young collection walks only
the tracked objects alive since the last one, a few thousand at 256 clients: about 1-10 ms."""


def tune_collector() -> None:
    """Raise the young generation's threshold, keeping the older generations' ratios."""
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, oldest)


def freeze_startup_heap() -> int:
    """Move every object tracked now to the permanent generation; returns how many are frozen."""
    gc.freeze()
    return gc.get_freeze_count()
