"""``usage_nano_cores``: CPU use over the interval since the previous sample.

kubelet asks every few seconds; the rate is the CPU time added since the last
time anyone asked about the same cgroup, divided by the wall time between.
The first sample of a cgroup has no rate yet. A counter that went backwards
(the cgroup was recreated) starts over.
"""

from __future__ import annotations

import threading

MIN_INTERVAL_NS = 10_000_000  # closer samples give noise, not a rate


class CpuRates:
    def __init__(self) -> None:
        self._last: dict[str, tuple[int, int, int | None]] = {}  # key -> (at_ns, cpu_ns, rate)
        self._lock = threading.Lock()

    def rate(self, key: str, now_ns: int, cpu_ns: int) -> int | None:
        """Nano-cores since the previous sample of ``key``; None for the first."""
        with self._lock:
            previous = self._last.get(key)
            if previous is not None and 0 <= now_ns - previous[0] < MIN_INTERVAL_NS:
                return previous[2]  # asked twice at once (a list then a get): same answer
            rate = None
            if previous is not None and cpu_ns >= previous[1] and now_ns > previous[0]:
                rate = (cpu_ns - previous[1]) * 1_000_000_000 // (now_ns - previous[0])
            self._last[key] = (now_ns, cpu_ns, rate)
            return rate

    def forget_except(self, keys: set[str]) -> None:
        """Drop samples of cgroups that are gone."""
        with self._lock:
            for key in set(self._last) - keys:
                del self._last[key]
