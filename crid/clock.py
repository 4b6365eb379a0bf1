"""The clock seam: wall time and monotonic time, replaceable in tests."""

from __future__ import annotations

import time


class Clock:
    """Real time. Tests pass a subclass that returns what they choose."""

    def now_ns(self) -> int:
        """Wall-clock time in nanoseconds since the epoch (CRI timestamps)."""
        return time.time_ns()

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps; for durations and timeouts."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Block this thread (never the loop: callers run in a worker thread)."""
        time.sleep(seconds)
