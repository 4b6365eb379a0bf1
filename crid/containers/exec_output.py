"""ExecSync's output, read with a cap: what a container prints cannot grow the daemon.

A command run through ExecSync may print without end (``yes``); reading all
of it into the response grew the daemon by gigabytes and failed only when the
whole answer was built (CVE-2022-31030 / CVE-2022-1708 in containerd and
cri-o). Both streams draw on one budget, so each keeps at most 16 MiB (as
both runtimes cap them) and together they still fit, with the protobuf
framing and the notice, in the 16 MiB message kubelet accepts. What comes
past the budget is read to the end and dropped, so the process is never left
blocked on a full pipe and exits as it would have; the response then says on
stderr what was dropped.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable

from crid import errors

KUBELET_MAX_MESSAGE = 16 * 1024 * 1024  # kubelet's CRI client refuses larger answers
FRAMING = 4096  # the response's fields, tags, lengths and the truncation notices
DEFAULT_LIMIT = KUBELET_MAX_MESSAGE - FRAMING
CHUNK = 256 * 1024


@dataclasses.dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes


class Budget:
    """Bytes both streams of one exec may still keep, shared between their readers."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit

    def take(self, wanted: int) -> int:
        granted = min(wanted, self.left)
        self.left -= granted
        return granted


@dataclasses.dataclass(frozen=True)
class Captured:
    kept: bytes
    dropped: int  # bytes read past the budget and thrown away


async def read_capped(stream: asyncio.StreamReader, budget: Budget) -> Captured:
    kept = bytearray()
    dropped = 0
    while True:
        chunk = await stream.read(CHUNK)
        if not chunk:
            return Captured(bytes(kept), dropped)
        granted = budget.take(len(chunk))
        kept += chunk[:granted]
        dropped += len(chunk) - granted


def truncation_notice(name: str, captured: Captured, budget: Budget) -> bytes:
    """The line appended to stderr when a stream was cut; b"" when it was not."""
    if not captured.dropped:
        return b""
    return (f"\ncrid: ExecSync {name} truncated: output is capped at {budget.limit} bytes, "
            f"kept {len(captured.kept)}, dropped {captured.dropped}\n").encode()


async def collect(stdout: asyncio.StreamReader, stderr: asyncio.StreamReader,
                  ended: Awaitable[int], *, limit: int, timeout: float | None,
                  stop: Callable[[], Awaitable[None]], command: object) -> ExecResult:
    """Both streams read to their end under one budget of ``limit`` bytes, and
    the exit code ``ended`` gives. After ``timeout`` seconds ``stop`` (which
    kills the process) is awaited and ``DeadlineExceeded`` raised, as the CRI
    asks. Whatever ends the wait, no reader is left running."""
    budget = Budget(limit)
    tasks = (asyncio.ensure_future(read_capped(stdout, budget)),
             asyncio.ensure_future(read_capped(stderr, budget)),
             asyncio.ensure_future(ended))
    try:
        out, err, code = await asyncio.wait_for(asyncio.gather(*tasks), timeout or None)
    except TimeoutError:
        await stop()
        raise errors.DeadlineExceeded(
            f"command {command} timed out after {timeout} seconds") from None
    finally:
        for task in tasks:
            task.cancel()
    notices = truncation_notice("stdout", out, budget) + truncation_notice("stderr", err, budget)
    return ExecResult(exit_code=code, stdout=out.kept, stderr=err.kept + notices)
