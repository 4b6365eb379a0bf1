"""cgroup v2 controller modules against files in a tmp dir."""

from __future__ import annotations

from pathlib import Path

import pytest
from crid.oci import cgroups
from crid.oci.cgroups import freezer, v2
from crid.oci.cgroups.v2 import cpu, io, memory, pids, unified
from crid.oci.errors import InvalidArgument


def _read(d: Path, name: str) -> str:
    return (d / name).read_text()


@pytest.mark.parametrize(("shares", "weight"), [(2, 1), (1024, 39), (262144, 10000)])
def test_shares_to_weight(shares: int, weight: int) -> None:
    assert cpu.shares_to_weight(shares) == weight


def test_cpu(tmp_path: Path) -> None:
    cpu.apply({"cpu": {"shares": 1024, "quota": 50000, "period": 100000, "burst": 10}},
              str(tmp_path))
    assert _read(tmp_path, "cpu.weight") == "39"
    assert _read(tmp_path, "cpu.max") == "50000 100000"
    assert _read(tmp_path, "cpu.max.burst") == "10"


def test_cpu_unlimited_quota(tmp_path: Path) -> None:
    cpu.apply({"cpu": {"quota": -1, "period": 20000}}, str(tmp_path))
    assert _read(tmp_path, "cpu.max") == "max 20000"


def test_memory_swap_is_memory_plus_swap(tmp_path: Path) -> None:
    memory.apply({"memory": {"limit": 100, "swap": 250, "reservation": 10}}, str(tmp_path))
    assert _read(tmp_path, "memory.max") == "100"
    assert _read(tmp_path, "memory.swap.max") == "150"
    assert _read(tmp_path, "memory.low") == "10"


def test_memory_unlimited(tmp_path: Path) -> None:
    memory.apply({"memory": {"limit": -1, "swap": -1}}, str(tmp_path))
    assert (_read(tmp_path, "memory.max"), _read(tmp_path, "memory.swap.max")) == ("max", "max")


def test_memory_swap_below_limit_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument):
        memory.apply({"memory": {"limit": 100, "swap": 50}}, str(tmp_path))


def test_pids(tmp_path: Path) -> None:
    pids.apply({"pids": {"limit": 7}}, str(tmp_path))
    assert _read(tmp_path, "pids.max") == "7"


def test_io(tmp_path: Path) -> None:
    io.apply({"blockIO": {"weight": 1000,
                          "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 5}]}},
             str(tmp_path))
    assert _read(tmp_path, "io.weight") == "10000"
    assert _read(tmp_path, "io.max") == "8:0 rbps=5"


def test_blkio_weight_conversion() -> None:
    assert (io.blkio_to_io_weight(10), io.blkio_to_io_weight(1000)) == (1, 10000)


def test_unified(tmp_path: Path) -> None:
    unified.apply({"unified": {"memory.high": "1000", "pids.max": "3"}}, str(tmp_path))
    assert (_read(tmp_path, "memory.high"), _read(tmp_path, "pids.max")) == ("1000", "3")


@pytest.mark.parametrize("key", ["../escape", "memory/high", "nodot"])
def test_unified_rejects_bad_names(tmp_path: Path, key: str) -> None:
    with pytest.raises(InvalidArgument):
        unified.apply({"unified": {key: "1"}}, str(tmp_path))


def test_apply_all(tmp_path: Path) -> None:
    v2.apply({"memory": {"limit": 5}, "pids": {"limit": 2}}, str(tmp_path))
    assert (_read(tmp_path, "memory.max"), _read(tmp_path, "pids.max")) == ("5", "2")


def test_freezer(tmp_path: Path) -> None:
    (tmp_path / "cgroup.events").write_text("populated 1\nfrozen 1\n")
    freezer.set_frozen(str(tmp_path), True, v2=True)
    assert freezer.is_frozen(str(tmp_path), v2=True)
    assert cgroups.is_frozen({"": str(tmp_path)})
