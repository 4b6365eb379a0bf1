"""The finer cgroup readings against cgroupfs-shaped files in a tmp dir (v1 and v2)."""

from __future__ import annotations

import os
from pathlib import Path

from crid.stats.cgroup_detail import (
    IoDevice,
    V1DetailReader,
    V2DetailReader,
    device_name,
    parse_io_stat,
    parse_v1_blkio,
    weight_to_shares,
)
from tests.crid.stats.test_cgroups import write

MIB = 1024 * 1024


def test_v1_blkio_joins_bytes_and_operations_per_device() -> None:
    service_bytes = "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 1\n8:0 Total 12288\nTotal 12288\n"
    serviced = "8:0 Read 1\n8:0 Write 2\n8:0 Total 3\n253:1 Write 5\nTotal 8\n"
    assert parse_v1_blkio(service_bytes, serviced) == (
        IoDevice(8, 0, read_bytes=4096, write_bytes=8192, reads=1, writes=2),
        IoDevice(253, 1, writes=5))


def test_v2_io_stat() -> None:
    text = "8:16 rbytes=1024 wbytes=2048 rios=3 wios=4 dbytes=0 dios=0\n"
    assert parse_io_stat(text) == (IoDevice(8, 16, 1024, 2048, 3, 4),)


def test_weight_maps_back_to_shares() -> None:
    assert weight_to_shares(1) == 2
    assert weight_to_shares(10000) == 262144
    assert weight_to_shares(39) == 998  # runc maps 1024 shares to 39 (integer division)


def test_v1_reads_cfs_ticks_memory_and_pids(tmp_path: Path) -> None:
    path = "crid/pod/c1"
    write(tmp_path / "cpu" / path, {
        "cpu.stat": "nr_periods 40\nnr_throttled 7\nthrottled_time 3000000000\n",
        "cpu.cfs_period_us": "100000\n", "cpu.shares": "1024\n"})
    write(tmp_path / "cpuacct" / path, {"cpuacct.stat": "user 250\nsystem 30\n"})
    write(tmp_path / "memory" / path, {
        "memory.stat": f"cache 1\ntotal_cache {5 * MIB}\ntotal_mapped_file {MIB}\n",
        "memory.failcnt": "3\n", "memory.max_usage_in_bytes": f"{9 * MIB}\n",
        "memory.kmem.usage_in_bytes": "65536\n",
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        "cgroup.procs": "999\n"})
    write(tmp_path / "pids" / path, {"pids.max": "max\n", "cgroup.procs": "10\n11\n"})
    write(tmp_path / "blkio" / path, {"blkio.throttle.io_service_bytes": "Total 0\n",
                                      "blkio.throttle.io_serviced": "Total 0\n"})
    detail = V1DetailReader(tmp_path, ticks=100).read("/" + path)
    assert detail is not None
    assert (detail.cpu_user_ns, detail.cpu_system_ns) == (2_500_000_000, 300_000_000)
    assert (detail.cfs_periods, detail.cfs_throttled_periods) == (40, 7)
    assert detail.cfs_throttled_ns == 3_000_000_000
    assert (detail.cpu_period_us, detail.cpu_shares) == (100000, 1024)
    assert (detail.memory_cache, detail.mapped_file) == (5 * MIB, MIB)
    assert (detail.failcnt, detail.max_usage, detail.kernel_usage) == (3, 9 * MIB, 65536)
    assert detail.oom_events == 2
    assert detail.threads_max == 0
    assert detail.pids == (10, 11)
    assert detail.io == ()


def test_v2_reads_one_directory(tmp_path: Path) -> None:
    directory = tmp_path / "crid/pod/c1"
    write(directory, {
        "cpu.stat": ("usage_usec 900\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 12\n"
                     "nr_throttled 4\nthrottled_usec 1500000\n"),
        "cpu.max": "20000 100000\n", "cpu.weight": "100\n",
        "memory.stat": f"anon 1\nfile {4 * MIB}\nfile_mapped {MIB}\nkernel 8192\n",
        "memory.events": "low 0\nhigh 0\nmax 6\noom 1\noom_kill 1\n",
        "memory.peak": f"{7 * MIB}\n", "pids.max": "32\n", "cgroup.procs": "42\n",
        "io.stat": "8:0 rbytes=512 wbytes=1024 rios=1 wios=2 dbytes=0 dios=0\n"})
    detail = V2DetailReader(tmp_path).read("/crid/pod/c1")
    assert detail is not None
    assert (detail.cpu_user_ns, detail.cpu_system_ns) == (2_000_000_000, 500_000_000)
    assert (detail.cfs_periods, detail.cfs_throttled_periods) == (12, 4)
    assert detail.cfs_throttled_ns == 1_500_000_000
    assert (detail.cpu_period_us, detail.cpu_shares) == (100000, weight_to_shares(100))
    assert (detail.memory_cache, detail.mapped_file, detail.kernel_usage) == (4 * MIB, MIB, 8192)
    assert (detail.failcnt, detail.oom_events, detail.max_usage) == (6, 1, 7 * MIB)
    assert (detail.threads_max, detail.pids) == (32, (42,))
    assert [(d.major, d.read_bytes, d.writes) for d in detail.io] == [(8, 512, 2)]
    assert detail.io[0].name  # a sysfs name or the numbers


def test_v2_kernel_usage_before_the_kernel_key(tmp_path: Path) -> None:
    write(tmp_path / "c", {"memory.stat": "slab 100\nkernel_stack 20\npagetables 3\n"})
    detail = V2DetailReader(tmp_path).read("c")
    assert detail is not None and detail.kernel_usage == 123


def test_a_missing_cgroup_reads_as_none(tmp_path: Path) -> None:
    assert V1DetailReader(tmp_path, ticks=100).read("/gone") is None
    assert V2DetailReader(tmp_path).read("/gone") is None


def test_device_names_come_from_sysfs() -> None:
    block = sorted(os.listdir("/sys/dev/block"))
    if block:  # the VM has a disk; name it as the kernel does
        major, minor = (int(n) for n in block[0].split(":"))
        assert device_name(major, minor).startswith("/dev/")
    assert device_name(4095, 1048575) == "4095:1048575"
