"""The finer cgroup readings behind cAdvisor's metrics (CFS throttling, user and
system CPU, page cache, fail counts, OOM kills, block I/O, the pids limit and
the member processes), for cgroup v1 and v2.

Like ``cgroups``, a reader reads a few small files of one cgroup and never
walks a tree. A missing file leaves its field ``None``; a cgroup that does not
exist at all reads as ``None``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Protocol

from crid.oci.cgroups.layout import is_v2
from crid.stats.cgroups import CGROUP_ROOT, read_int, read_keyed, read_text

SYS_DEV_BLOCK = Path("/sys/dev/block")


@dataclasses.dataclass(frozen=True)
class IoDevice:
    major: int
    minor: int
    read_bytes: int = 0
    write_bytes: int = 0
    reads: int = 0
    writes: int = 0
    name: str = ""  # /dev/sda, filled in by the readers


@dataclasses.dataclass(frozen=True)
class Detail:
    cpu_user_ns: int | None = None
    cpu_system_ns: int | None = None
    cfs_periods: int | None = None
    cfs_throttled_periods: int | None = None
    cfs_throttled_ns: int | None = None
    cpu_period_us: int | None = None  # the CFS period in force
    cpu_shares: int | None = None
    memory_cache: int | None = None
    mapped_file: int | None = None
    failcnt: int | None = None  # times the memory limit was hit
    max_usage: int | None = None  # peak memory usage
    kernel_usage: int | None = None
    oom_events: int | None = None
    threads_max: int | None = None  # pids.max; 0 when unlimited, as cAdvisor reports it
    pids: tuple[int, ...] = ()  # the cgroup's processes (cgroup.procs)
    io: tuple[IoDevice, ...] = ()


class DetailReader(Protocol):
    def read(self, path: str) -> Detail | None: ...


def _pids(path: Path) -> tuple[int, ...]:
    return tuple(int(line) for line in (read_text(path) or "").split() if line.isdigit())


def _threads_max(path: Path) -> int | None:
    text = read_text(path)
    if text is None:
        return None
    return 0 if text.strip() == "max" else read_int(path)


def parse_v1_blkio(service_bytes: str, serviced: str) -> tuple[IoDevice, ...]:
    """``blkio.throttle.io_service_bytes`` and ``io_serviced``: ``M:m Read N`` lines."""
    found: dict[tuple[int, int], dict[str, int]] = {}
    for text, unit in ((service_bytes, "bytes"), (serviced, "ops")):
        for line in text.splitlines():
            fields = line.split()
            if len(fields) != 3 or ":" not in fields[0]:
                continue  # the "Total N" line
            major, _, minor = fields[0].partition(":")
            op = fields[1].lower()
            if op in ("read", "write"):
                counters = found.setdefault((int(major), int(minor)), {})
                counters[f"{op}_{unit}"] = int(fields[2])
    return tuple(IoDevice(major, minor, c.get("read_bytes", 0), c.get("write_bytes", 0),
                          c.get("read_ops", 0), c.get("write_ops", 0))
                 for (major, minor), c in sorted(found.items()))


def parse_io_stat(text: str) -> tuple[IoDevice, ...]:
    """cgroup v2 ``io.stat``: ``M:m rbytes=N wbytes=N rios=N wios=N ...`` lines."""
    found = []
    for line in text.splitlines():
        device, *pairs = line.split()
        major, _, minor = device.partition(":")
        values = dict(pair.partition("=")[::2] for pair in pairs)
        found.append(IoDevice(int(major), int(minor), int(values.get("rbytes", 0)),
                              int(values.get("wbytes", 0)), int(values.get("rios", 0)),
                              int(values.get("wios", 0))))
    return tuple(found)


def weight_to_shares(weight: int) -> int:
    """The inverse of runc's shares-to-weight mapping (shares 2..262144, weight 1..10000)."""
    return 2 + (weight - 1) * 262142 // 9999


def device_name(major: int, minor: int, sys_dev_block: Path = SYS_DEV_BLOCK) -> str:
    """``/dev/sda`` for 8:0; the numbers when sysfs does not know the device."""
    try:
        return "/dev/" + os.path.basename(os.readlink(sys_dev_block / f"{major}:{minor}"))
    except OSError:
        return f"{major}:{minor}"


def _named(devices: tuple[IoDevice, ...]) -> tuple[IoDevice, ...]:
    return tuple(dataclasses.replace(d, name=device_name(d.major, d.minor)) for d in devices)


class V1DetailReader:
    """cgroup v1: the cpu, cpuacct, memory, blkio and pids controllers."""

    def __init__(self, root: Path = CGROUP_ROOT, ticks: int | None = None) -> None:
        self.root = root
        self.tick_ns = 1_000_000_000 // (ticks or os.sysconf("SC_CLK_TCK"))

    def _dir(self, controller: str, path: str) -> Path:
        return self.root / controller / path.lstrip("/")

    def read(self, path: str) -> Detail | None:
        memory, cpu = self._dir("memory", path), self._dir("cpu", path)
        if not memory.is_dir() and not cpu.is_dir():
            return None
        cfs = read_keyed(cpu / "cpu.stat")
        ticks = read_keyed(self._dir("cpuacct", path) / "cpuacct.stat")
        stat = read_keyed(memory / "memory.stat")
        blkio = self._dir("blkio", path)
        pids = self._dir("pids", path)
        return Detail(
            cpu_user_ns=ticks["user"] * self.tick_ns if "user" in ticks else None,
            cpu_system_ns=ticks["system"] * self.tick_ns if "system" in ticks else None,
            cfs_periods=cfs.get("nr_periods"),
            cfs_throttled_periods=cfs.get("nr_throttled"),
            cfs_throttled_ns=cfs.get("throttled_time"),
            cpu_period_us=read_int(cpu / "cpu.cfs_period_us"),
            cpu_shares=read_int(cpu / "cpu.shares"),
            memory_cache=stat.get("total_cache"),
            mapped_file=stat.get("total_mapped_file"),
            failcnt=read_int(memory / "memory.failcnt"),
            max_usage=read_int(memory / "memory.max_usage_in_bytes"),
            kernel_usage=read_int(memory / "memory.kmem.usage_in_bytes"),
            oom_events=read_keyed(memory / "memory.oom_control").get("oom_kill"),
            threads_max=_threads_max(pids / "pids.max"),
            pids=_pids((pids if pids.is_dir() else memory) / "cgroup.procs"),
            io=_named(parse_v1_blkio(
                read_text(blkio / "blkio.throttle.io_service_bytes") or "",
                read_text(blkio / "blkio.throttle.io_serviced") or "")),
        )


class V2DetailReader:
    """cgroup v2: ``cpu.*``, ``memory.*``, ``io.stat`` and ``pids.*`` in one directory."""

    def __init__(self, root: Path = CGROUP_ROOT) -> None:
        self.root = root

    def read(self, path: str) -> Detail | None:
        directory = self.root / path.lstrip("/")
        if not directory.is_dir():
            return None
        cpu = read_keyed(directory / "cpu.stat")
        stat = read_keyed(directory / "memory.stat")
        events = read_keyed(directory / "memory.events")
        period = (read_text(directory / "cpu.max") or "").split()
        weight = read_int(directory / "cpu.weight")
        kernel = stat.get("kernel")
        if kernel is None and "slab" in stat:  # before 5.18 the kernel total is not listed
            kernel = stat["slab"] + stat.get("kernel_stack", 0) + stat.get("pagetables", 0)
        throttled = cpu.get("throttled_usec")
        return Detail(
            cpu_user_ns=cpu["user_usec"] * 1000 if "user_usec" in cpu else None,
            cpu_system_ns=cpu["system_usec"] * 1000 if "system_usec" in cpu else None,
            cfs_periods=cpu.get("nr_periods"),
            cfs_throttled_periods=cpu.get("nr_throttled"),
            cfs_throttled_ns=throttled * 1000 if throttled is not None else None,
            cpu_period_us=int(period[1]) if len(period) == 2 and period[1].isdigit() else None,
            cpu_shares=weight_to_shares(weight) if weight is not None else None,
            memory_cache=stat.get("file"),
            mapped_file=stat.get("file_mapped"),
            failcnt=events.get("max"),
            max_usage=read_int(directory / "memory.peak"),
            kernel_usage=kernel,
            oom_events=events.get("oom_kill"),
            threads_max=_threads_max(directory / "pids.max"),
            pids=_pids(directory / "cgroup.procs"),
            io=_named(parse_io_stat(read_text(directory / "io.stat") or "")),
        )


def detect(root: Path = CGROUP_ROOT) -> DetailReader:
    return V2DetailReader(root) if is_v2(root) else V1DetailReader(root)

