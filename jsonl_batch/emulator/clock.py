"""Simulated time: runs ``speed`` times faster than the wall clock, so a batch that would
take minutes on Azure finishes in a fraction of a second. It times the phases only (a minute
of ``validating``, the 24 h window); the dates on files and batches are the wall clock's, so
a client never sees a batch created in the future.
"""

from __future__ import annotations

import threading
import time


class SimClock:
    """Unix time in simulated seconds, starting at ``start`` (default: now)."""

    def __init__(self, speed: float, start: float | None = None) -> None:
        self.speed = speed
        self._lock = threading.Lock()
        self._origin = time.time() if start is None else start
        self._mono = time.monotonic()

    def now(self) -> float:
        with self._lock:
            return self._origin + (time.monotonic() - self._mono) * self.speed

    def advance(self, seconds: float) -> float:
        """Jump ahead by ``seconds`` of simulated time (tests of long windows)."""
        with self._lock:
            self._origin += seconds
        return self.now()

    def real_seconds(self, simulated: float) -> float:
        """How long ``simulated`` seconds take on the wall clock."""
        return simulated / self.speed
