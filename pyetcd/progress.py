"""Progress of a long restore or migration, on a terminal only: scripts and logs see nothing extra."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Prints "N keys, M MB" over itself on ``stream`` at most a few times a second, if it is a tty."""

    def __init__(self, what: str, stream: TextIO | None = None, interval: float = 0.2) -> None:
        self.what = what
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty()
        self.interval = interval
        self._last = 0.0
        self._shown = False

    def __call__(self, records: int, size: int) -> None:
        now = time.monotonic()
        if not self.enabled or now - self._last < self.interval:
            return
        self._last = now
        self._shown = True
        self.stream.write(f"\r{self.what}: {records} keys, {size / 1e6:.1f} MB")
        self.stream.flush()

    def done(self, records: int, size: int) -> None:
        if self.enabled and self._shown:
            self.stream.write(f"\r{self.what}: {records} keys, {size / 1e6:.1f} MB, done\n")
            self.stream.flush()
