"""Reading a cgroup's usage: cgroup v1 (one tree per controller) and v2.

A reader turns a cgroupfs path (``/crid/crid-<pod>/<container>``) into a
``Usage`` by reading a handful of small files; it never walks a tree, so a
stats call costs a few reads per container. Missing files (a controller not
mounted, a cgroup already gone) leave fields as ``None``; a cgroup that does
not exist at all reads as ``None``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Protocol

from crid.oci.cgroups import layout
from crid.oci.cgroups.layout import is_v2

CGROUP_ROOT = Path(layout.CGROUP_ROOT)

# v1 reports "no limit" as a huge page-aligned number; anything above this is unlimited.
UNLIMITED = 1 << 62


@dataclasses.dataclass(frozen=True)
class Usage:
    cpu_ns: int | None = None  # cumulative CPU time
    memory_usage: int | None = None
    working_set: int | None = None  # usage minus inactive file pages, as kubelet counts it
    rss: int | None = None
    page_faults: int | None = None
    major_page_faults: int | None = None
    memory_limit: int | None = None  # None when unlimited
    swap_usage: int | None = None
    swap_limit: int | None = None  # None when unlimited
    pids: int | None = None


class Reader(Protocol):
    def read(self, path: str) -> Usage | None: ...


def read_text(path: Path) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError, ProcessLookupError, OSError):
        return None


def read_int(path: Path) -> int | None:
    text = read_text(path)
    if text is None:
        return None
    text = text.strip()
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def read_keyed(path: Path) -> dict[str, int]:
    """A ``key value`` per line file (memory.stat, cpu.stat)."""
    found: dict[str, int] = {}
    for line in (read_text(path) or "").splitlines():
        key, _, value = line.partition(" ")
        try:
            found[key] = int(value)
        except ValueError:
            continue
    return found


def _limit(value: int | None) -> int | None:
    return value if value is not None and value < UNLIMITED else None


def _working_set(usage: int | None, inactive_file: int | None) -> int | None:
    if usage is None:
        return None
    return max(usage - (inactive_file or 0), 0)


class V1Reader:
    """cgroup v1: cpuacct, memory and pids controllers under ``root/<ctl>``."""

    def __init__(self, root: Path = CGROUP_ROOT) -> None:
        self.root = root

    def _dir(self, controller: str, path: str) -> Path:
        return self.root / controller / path.lstrip("/")

    def read(self, path: str) -> Usage | None:
        memory = self._dir("memory", path)
        cpu_ns = read_int(self._dir("cpuacct", path) / "cpuacct.usage")
        usage = read_int(memory / "memory.usage_in_bytes")
        if cpu_ns is None and usage is None:
            return None
        stat = read_keyed(memory / "memory.stat")
        memsw = read_int(memory / "memory.memsw.usage_in_bytes")
        memsw_limit = _limit(read_int(memory / "memory.memsw.limit_in_bytes"))
        limit = _limit(read_int(memory / "memory.limit_in_bytes"))
        pids = read_int(self._dir("pids", path) / "pids.current")
        return Usage(
            cpu_ns=cpu_ns,
            memory_usage=usage,
            working_set=_working_set(usage, stat.get("total_inactive_file")),
            rss=stat.get("total_rss"),
            page_faults=stat.get("total_pgfault"),
            major_page_faults=stat.get("total_pgmajfault"),
            memory_limit=limit,
            swap_usage=max(memsw - usage, 0) if memsw is not None and usage is not None else None,
            swap_limit=memsw_limit - limit if memsw_limit is not None and limit is not None
            else None,
            pids=pids,
        )


class V2Reader:
    """cgroup v2: one tree, ``cpu.stat``, ``memory.*`` and ``pids.current`` in it."""

    def __init__(self, root: Path = CGROUP_ROOT) -> None:
        self.root = root

    def read(self, path: str) -> Usage | None:
        directory = self.root / path.lstrip("/")
        cpu = read_keyed(directory / "cpu.stat")
        usage = read_int(directory / "memory.current")
        if not cpu and usage is None:
            return None
        stat = read_keyed(directory / "memory.stat")
        usec = cpu.get("usage_usec")
        return Usage(
            cpu_ns=usec * 1000 if usec is not None else None,
            memory_usage=usage,
            working_set=_working_set(usage, stat.get("inactive_file")),
            rss=stat.get("anon"),
            page_faults=stat.get("pgfault"),
            major_page_faults=stat.get("pgmajfault"),
            memory_limit=_limit(read_int(directory / "memory.max")),
            swap_usage=read_int(directory / "memory.swap.current"),
            swap_limit=_limit(read_int(directory / "memory.swap.max")),
            pids=read_int(directory / "pids.current"),
        )


def detect(root: Path = CGROUP_ROOT) -> Reader:
    """The reader for this node's cgroup layout."""
    return V2Reader(root) if is_v2(root) else V1Reader(root)


def memory_total(meminfo: Path = Path("/proc/meminfo")) -> int:
    """The node's memory: what an unlimited cgroup may use."""
    for line in (read_text(meminfo) or "").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
