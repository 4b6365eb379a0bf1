"""The event loop's debug mode (``crid.debug.slow_callback_ms``): every callback
that holds the loop longer than the threshold is logged, in crid's JSON log.

asyncio's debug mode does the timing (``loop.slow_callback_duration``) and
warns through the ``asyncio`` logger, which ``crid.logs`` routes into the JSON
log. asyncio times a callback by the wall clock; on a loaded node the loop
thread also waits for a CPU meanwhile, which is not the callback's doing. So
each report carries the loop thread's run-queue wait during the callback
(the kernel's ``schedstat``, sampled every few milliseconds by a small
thread) and ``own_ms``: wall time minus that wait, what the callback itself
cost in CPU and in blocking calls (disk, sleeps, a subprocess waited for).
The same thread notes where the loop thread is at each sample
(``sys._current_frames``, documented for debuggers), so a report also says
``where``: the lines the loop was seen on most during the callback.
Debug mode makes the daemon slower; it is for tests and for hunting stalls.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import logging
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from crid import logs

log = logs.get("crid.loop")

SAMPLE_SECONDS = 0.002
KEEP_SECONDS = 5.0  # reports of callbacks longer than this get no wait figure


Sample = tuple[float, int, str]  # monotonic time, run-queue wait so far (ns), where


class RunQueueWait:
    """The loop thread's run-queue wait (ns) and place over time, sampled by a thread."""

    def __init__(self, thread_id: int, python_thread: int | None = None) -> None:
        self._path = f"/proc/self/task/{thread_id}/schedstat"
        self._python_thread = python_thread  # threading.get_ident() of the loop's thread
        self._samples: collections.deque[Sample] = collections.deque(
            maxlen=int(KEEP_SECONDS / SAMPLE_SECONDS))
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    def start(self) -> None:
        self._sample()
        threading.Thread(target=self._run, name="crid-loop-debug", daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()

    def now(self) -> int | None:
        """The loop thread's total run-queue wait so far (ns); None without schedstat."""
        with contextlib.suppress(OSError, ValueError, IndexError), \
                open(self._path, "rb") as stat:
            return int(stat.read().split()[1])
        return None

    def since(self, started: float) -> float | None:
        """Seconds the loop thread waited for a CPU from ``started`` (monotonic) to now;
        None if that is not known. The sample at or before ``started`` is the base, so
        the figure may include up to one sampling interval of wait before it."""
        current = self.now()
        with self._lock:
            samples = list(self._samples)
        index = bisect.bisect_right([t for t, _, _ in samples], started) - 1
        if current is None or index < 0:
            return None
        return (current - samples[index][1]) / 1e9

    def where(self, started: float, most: int = 3) -> list[str]:
        """The places the loop thread was sampled at most since ``started``, with counts."""
        with self._lock:
            places = collections.Counter(w for t, _, w in self._samples if t >= started and w)
        return [f"{count}x {place}" for place, count in places.most_common(most)]

    def _run(self) -> None:
        while not self._stopped.wait(SAMPLE_SECONDS) and self._sample():
            pass

    def _sample(self) -> bool:
        value = self.now()
        if value is not None:
            place = self._place()
            with self._lock:
                self._samples.append((time.monotonic(), value, place))
        return value is not None

    def _place(self) -> str:
        """The loop thread's innermost frames, as ``file:line function`` (innermost last)."""
        frame = sys._current_frames().get(self._python_thread or -1)
        if frame is None:
            return ""
        stack = traceback.extract_stack(frame, limit=4)
        return " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}"
                           for f in reversed(stack))


class SlowCallbacks(logging.Filter):
    """Turns asyncio's ``Executing <handle> took N seconds`` into a structured
    warning with the wait figures; other asyncio records pass unchanged."""

    def __init__(self, waits: RunQueueWait, threshold: float) -> None:
        super().__init__()
        self._waits = waits
        self._threshold = threshold

    def filter(self, record: logging.LogRecord) -> bool:
        args: Any = record.args
        if not (record.msg.startswith("Executing ") and isinstance(args, tuple)
                and len(args) == 2 and isinstance(args[1], float)):
            return True
        took = args[1]
        started = time.monotonic() - took
        waited = self._waits.since(started)
        own = max(0.0, took - waited) if waited is not None else took
        log.warning("slow callback", callback=str(args[0])[:2000],
                    took_ms=round(took * 1000, 1),
                    run_queue_wait_ms=None if waited is None else round(waited * 1000, 1),
                    own_ms=round(own * 1000, 1), threshold_ms=round(self._threshold * 1000),
                    where=self._waits.where(started))
        return False  # reported above, in full


def enable(loop: asyncio.AbstractEventLoop, threshold_ms: int) -> RunQueueWait:
    """Debug mode on the running loop, reporting callbacks over ``threshold_ms``
    (call on the loop's thread)."""
    threshold = threshold_ms / 1000
    loop.set_debug(True)
    loop.slow_callback_duration = threshold
    waits = RunQueueWait(threading.get_native_id(), threading.get_ident())
    waits.start()
    logging.getLogger("asyncio").addFilter(SlowCallbacks(waits, threshold))
    log.info("event loop debug mode", slow_callback_ms=threshold_ms,
             run_queue_wait=waits.now() is not None, pid=os.getpid())
    return waits
