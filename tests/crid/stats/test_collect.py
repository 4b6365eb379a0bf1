"""Turning cgroup usage into the CRI's CPU, memory and swap messages."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from crid.stats.cgroups import Usage
from crid.stats.collect import Collector

MIB = 1024 * 1024


class Reader:
    def __init__(self, usage: Usage) -> None:
        self.usage = usage

    def read(self, path: str) -> Usage | None:
        return self.usage


def collector(usage: Usage, now: list[int]) -> Collector:
    clock = SimpleNamespace(now_ns=lambda: now[0])
    containers = cast(Any, SimpleNamespace(clock=clock, records=None, listeners=[]))
    return Collector(containers, cast(Any, None), reader=Reader(usage))


def test_memory_available_is_the_limit_minus_the_working_set() -> None:
    usage = Usage(cpu_ns=0, memory_usage=300 * MIB, working_set=200 * MIB, rss=150 * MIB,
                  memory_limit=512 * MIB, swap_usage=MIB, swap_limit=64 * MIB)
    found = collector(usage, [1])
    memory = found._memory(usage, 1)
    assert memory.available_bytes.value == 312 * MIB
    assert (memory.usage_bytes.value, memory.rss_bytes.value) == (300 * MIB, 150 * MIB)
    swap = found._swap(usage, 1)
    assert (swap.swap_usage_bytes.value, swap.swap_available_bytes.value) == (MIB, 63 * MIB)


def test_an_unlimited_cgroup_may_use_the_node() -> None:
    usage = Usage(memory_usage=10 * MIB, working_set=8 * MIB)
    found = collector(usage, [1])
    assert found._memory(usage, 1).available_bytes.value == found.memory_total - 8 * MIB
    assert not found._swap(usage, 1).HasField("swap_available_bytes")


def test_cpu_rate_needs_a_previous_sample() -> None:
    now = [1_000_000_000]
    found = collector(Usage(cpu_ns=0), now)
    first = found._cpu("c", Usage(cpu_ns=5_000_000_000), now[0])
    assert first.usage_core_nano_seconds.value == 5_000_000_000
    assert not first.HasField("usage_nano_cores")
    now[0] += 2_000_000_000
    second = found._cpu("c", Usage(cpu_ns=6_000_000_000), now[0])
    assert second.usage_nano_cores.value == 500_000_000
