"""cgroup v1 controller modules against files in a tmp dir."""

from __future__ import annotations

from pathlib import Path

import pytest
from crid.oci.cgroups import freezer
from crid.oci.cgroups.v1 import blkio, cpu, cpuset, devices, hugetlb, memory, pids


def _read(d: Path, name: str) -> str:
    return (d / name).read_text()


def test_cpu(tmp_path: Path) -> None:
    cpu.apply({"cpu": {"shares": 512, "quota": 20000, "period": 50000, "burst": 1000,
                       "realtimeRuntime": 10, "realtimePeriod": 100}}, str(tmp_path))
    assert _read(tmp_path, "cpu.shares") == "512"
    assert _read(tmp_path, "cpu.cfs_quota_us") == "20000"
    assert _read(tmp_path, "cpu.cfs_period_us") == "50000"
    assert _read(tmp_path, "cpu.cfs_burst_us") == "1000"
    assert _read(tmp_path, "cpu.rt_runtime_us") == "10"
    assert _read(tmp_path, "cpu.rt_period_us") == "100"


def test_cpu_nothing_set_writes_nothing(tmp_path: Path) -> None:
    cpu.apply({}, str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_cpuset(tmp_path: Path) -> None:
    cpuset.apply({"cpu": {"cpus": "0-1", "mems": "0"}}, str(tmp_path))
    assert (_read(tmp_path, "cpuset.cpus"), _read(tmp_path, "cpuset.mems")) == ("0-1", "0")


def test_memory(tmp_path: Path) -> None:
    (tmp_path / "memory.memsw.limit_in_bytes").write_text("")
    memory.apply({"memory": {"limit": 100, "reservation": 50, "swap": 200, "swappiness": 10,
                             "disableOOMKiller": True}}, str(tmp_path))
    assert _read(tmp_path, "memory.limit_in_bytes") == "100"
    assert _read(tmp_path, "memory.soft_limit_in_bytes") == "50"
    assert _read(tmp_path, "memory.memsw.limit_in_bytes") == "200"
    assert _read(tmp_path, "memory.swappiness") == "10"
    assert _read(tmp_path, "memory.oom_control") == "1"


def test_memory_swap_skipped_without_memsw(tmp_path: Path) -> None:
    memory.apply({"memory": {"limit": 100, "swap": 200}}, str(tmp_path))
    assert not (tmp_path / "memory.memsw.limit_in_bytes").exists()


@pytest.mark.parametrize(("limit", "want"), [(42, "42"), (0, "max"), (-1, "max")])
def test_pids(tmp_path: Path, limit: int, want: str) -> None:
    pids.apply({"pids": {"limit": limit}}, str(tmp_path))
    assert _read(tmp_path, "pids.max") == want


def test_hugetlb(tmp_path: Path) -> None:
    hugetlb.apply({"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]}, str(tmp_path))
    assert _read(tmp_path, "hugetlb.2MB.limit_in_bytes") == "4194304"


def test_blkio(tmp_path: Path) -> None:
    blkio.apply({"blockIO": {"weight": 300, "leafWeight": 200,
                             "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 99}],
                             "throttleWriteIOPSDevice": [{"major": 8, "minor": 1, "rate": 7}]}},
                str(tmp_path))
    assert _read(tmp_path, "blkio.weight") == "300"
    assert _read(tmp_path, "blkio.leaf_weight") == "200"
    assert _read(tmp_path, "blkio.throttle.read_bps_device") == "8:0 99"
    assert _read(tmp_path, "blkio.throttle.write_iops_device") == "8:1 7"


def test_blkio_bfq_weight(tmp_path: Path) -> None:
    (tmp_path / "blkio.bfq.weight").write_text("100")
    blkio.apply({"blockIO": {"weight": 500}}, str(tmp_path))
    assert _read(tmp_path, "blkio.bfq.weight") == "500"
    assert not (tmp_path / "blkio.weight").exists()


def test_device_rules() -> None:
    assert devices.rule({"allow": False, "access": "rwm"}) == "a"
    assert devices.rule({"type": "c", "major": 1, "minor": 3, "access": "rw"}) == "c 1:3 rw"
    assert devices.rule({"type": "b", "major": None, "minor": -1}) == "b *:* rwm"


def test_devices_apply_order(tmp_path: Path) -> None:
    # On a real cgroup each write is a command; in a tmp dir the last write wins,
    # so check the final allow is one of the defaults and deny was "a".
    devices.apply({"devices": [{"allow": False, "access": "rwm"}]}, str(tmp_path))
    assert _read(tmp_path, "devices.deny") == "a"
    assert _read(tmp_path, "devices.allow") == devices.DEFAULT_ALLOW[-1]


def test_freezer(tmp_path: Path) -> None:
    (tmp_path / "freezer.state").write_text("THAWED")
    assert not freezer.is_frozen(str(tmp_path), v2=False)
    freezer.set_frozen(str(tmp_path), True, v2=False)
    assert freezer.is_frozen(str(tmp_path), v2=False)
    freezer.set_frozen(str(tmp_path), False, v2=False)
    assert _read(tmp_path, "freezer.state") == "THAWED"
