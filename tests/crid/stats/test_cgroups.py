"""cgroup usage readers against cgroupfs-shaped files in a tmp dir (v1 and v2)."""

from __future__ import annotations

from pathlib import Path

from crid.stats.cgroups import V1Reader, V2Reader, memory_total

MIB = 1024 * 1024
V1_UNLIMITED = "9223372036854771712\n"


def write(directory: Path, files: dict[str, str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)


def test_v1_reads_cpu_memory_swap_and_pids(tmp_path: Path) -> None:
    path = "/crid/pod/c1"
    write(tmp_path / "cpuacct" / "crid/pod/c1", {"cpuacct.usage": "5000000000\n"})
    write(tmp_path / "memory" / "crid/pod/c1", {
        "memory.usage_in_bytes": f"{120 * MIB}\n",
        "memory.stat": (f"cache {30 * MIB}\nrss 1\ntotal_rss {90 * MIB}\n"
                        f"total_inactive_file {20 * MIB}\ntotal_pgfault 700\n"
                        "total_pgmajfault 3\n"),
        "memory.limit_in_bytes": f"{256 * MIB}\n",
        "memory.memsw.usage_in_bytes": f"{125 * MIB}\n",
        "memory.memsw.limit_in_bytes": f"{512 * MIB}\n",
    })
    write(tmp_path / "pids" / "crid/pod/c1", {"pids.current": "4\n"})
    usage = V1Reader(tmp_path).read(path)
    assert usage is not None
    assert usage.cpu_ns == 5_000_000_000
    assert usage.memory_usage == 120 * MIB
    assert usage.working_set == 100 * MIB
    assert usage.rss == 90 * MIB
    assert (usage.page_faults, usage.major_page_faults) == (700, 3)
    assert usage.memory_limit == 256 * MIB
    assert (usage.swap_usage, usage.swap_limit) == (5 * MIB, 256 * MIB)
    assert usage.pids == 4


def test_v1_unlimited_memory_and_no_swap_accounting(tmp_path: Path) -> None:
    write(tmp_path / "cpuacct" / "x", {"cpuacct.usage": "1\n"})
    write(tmp_path / "memory" / "x", {"memory.usage_in_bytes": "4096\n",
                                      "memory.limit_in_bytes": V1_UNLIMITED,
                                      "memory.stat": "total_inactive_file 8192\n"})
    usage = V1Reader(tmp_path).read("/x")
    assert usage is not None
    assert usage.memory_limit is None
    assert usage.working_set == 0  # inactive file above usage never goes negative
    assert usage.swap_usage is None and usage.swap_limit is None and usage.pids is None


def test_a_missing_cgroup_reads_as_none(tmp_path: Path) -> None:
    assert V1Reader(tmp_path).read("/gone") is None
    assert V2Reader(tmp_path).read("/gone") is None


def test_v2_reads_one_tree(tmp_path: Path) -> None:
    write(tmp_path / "crid/pod/c1", {
        "cpu.stat": "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n",
        "memory.current": f"{64 * MIB}\n",
        "memory.stat": f"anon {40 * MIB}\nfile {24 * MIB}\ninactive_file {14 * MIB}\n"
                       "pgfault 99\npgmajfault 1\n",
        "memory.max": "max\n",
        "memory.swap.current": "0\n",
        "memory.swap.max": f"{32 * MIB}\n",
        "pids.current": "2\n",
    })
    usage = V2Reader(tmp_path).read("/crid/pod/c1")
    assert usage is not None
    assert usage.cpu_ns == 2_500_000_000
    assert (usage.memory_usage, usage.working_set, usage.rss) == (64 * MIB, 50 * MIB, 40 * MIB)
    assert (usage.page_faults, usage.major_page_faults) == (99, 1)
    assert usage.memory_limit is None
    assert (usage.swap_usage, usage.swap_limit) == (0, 32 * MIB)
    assert usage.pids == 2


def test_memory_total_from_meminfo(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemFree: 1 kB\n")
    assert memory_total(meminfo) == 24_000_000 * 1024
