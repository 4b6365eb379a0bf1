"""Where a node's CPU went while something ran, by command name: what a
wall-clock figure on two cores is bound by.

Processes that exit meanwhile (CNI plugins, ``crid-runtime create``, ``runc``,
iptables) are counted from the kernel's process accounting (``acct(2)``, one
``struct acct_v3`` per exit); processes alive at the end (daemons, conmons,
shims, the pods' processes) by their ``utime + stime`` growth in
``/proc/PID/stat``. Every process on the node counts, so the node should be
quiet but for the runtime under test.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import struct
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

ACCT_V3 = struct.Struct("<BBHIIIIIIf8H16s")  # linux/acct.h, struct acct_v3
ACCT_VERSION = 3
AHZ = 100  # comp_t times are in these ticks
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _comp_t(value: int) -> int:
    """comp_t: a 13-bit mantissa and a 3-bit base-8 exponent."""
    return (value & 0x1FFF) << (3 * ((value >> 13) & 7))


def exited_cpu(data: bytes) -> dict[str, float]:
    """CPU seconds by command of the processes in an accounting file."""
    spent: dict[str, float] = defaultdict(float)
    for offset in range(0, len(data) - ACCT_V3.size + 1, ACCT_V3.size):
        fields = ACCT_V3.unpack_from(data, offset)
        if fields[1] != ACCT_VERSION:
            continue
        utime, stime, comm = fields[10], fields[11], fields[18]
        name = comm.split(b"\0", 1)[0].decode(errors="replace")
        spent[_kind(name)] += (_comp_t(utime) + _comp_t(stime)) / AHZ
    return spent


def live_cpu() -> dict[int, tuple[str, float]]:
    """Each live process's command and CPU seconds so far (its own, not its children's)."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            text = Path(entry.path, "stat").read_text()
            comm = text[text.index("(") + 1:text.rindex(")")]
            fields = text[text.rindex(")") + 2:].split()
            found[int(entry.name)] = (comm, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
    return found


@contextlib.contextmanager
def cpu_by_command() -> Iterator[dict[str, float]]:
    """Fills the yielded counter, on exit, with the CPU seconds each command
    spent on the node while the body ran."""
    spent: dict[str, float] = defaultdict(float)
    libc = ctypes.CDLL(None, use_errno=True)
    with tempfile.NamedTemporaryFile(prefix="crid-acct-") as acct_file:
        before = live_cpu()
        if libc.acct(acct_file.name.encode()) != 0:
            raise OSError(ctypes.get_errno(), "acct(2) could not start accounting")
        try:
            yield spent
        finally:
            after = live_cpu()
            libc.acct(None)
        for comm, seconds in exited_cpu(Path(acct_file.name).read_bytes()).items():
            spent[comm] += seconds
    for pid, (comm, seconds) in after.items():
        was = before.get(pid)
        grown = seconds - (was[1] if was else 0.0)
        if grown > 0:
            spent[_kind(comm)] += grown


def _kind(comm: str) -> str:
    """Kernel workers by their kind: a worker's name changes with its work item."""
    return comm.split("/", 1)[0] if comm.startswith(("kworker/", "ksoftirqd/")) else comm


def report(title: str, spent: dict[str, float], wall: float, top: int = 12) -> None:
    """Print the largest consumers, and the total against what the cores had."""
    cores = os.cpu_count() or 1
    total = sum(spent.values())
    print(f"{title}: {total:.2f} CPU s in {wall:.2f} s wall "
          f"({total / (wall * cores) * 100:.0f} % of {cores} cores)")
    for comm, seconds in sorted(spent.items(), key=lambda item: -item[1])[:top]:
        print(f"  {comm:20}{seconds:8.2f} s {seconds / total * 100:5.1f} %")
