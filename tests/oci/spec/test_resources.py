"""LinuxContainerResources → linux.resources, cgroup path, oom_score_adj."""

from __future__ import annotations

import pytest
from cri_api.v1 import api_pb2
from crid.oci.spec import resources

from crid.errors import InvalidArgument
from tests.oci.spec.fakes import FakeHost


def test_empty_is_empty() -> None:
    assert resources.linux_resources(api_pb2.LinuxContainerResources(), FakeHost()) == {}


def test_everything_mapped() -> None:
    res = api_pb2.LinuxContainerResources(
        cpu_shares=512, cpu_quota=50000, cpu_period=100000, cpuset_cpus="0-1", cpuset_mems="0",
        memory_limit_in_bytes=64 << 20, memory_swap_limit_in_bytes=128 << 20,
        hugepage_limits=[api_pb2.HugepageLimit(page_size="2MB", limit=4 << 21)],
        unified={"memory.high": "50000000"},
    )
    assert resources.linux_resources(res, FakeHost(cgroup2=True)) == {
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"},
        "memory": {"limit": 64 << 20, "swap": 128 << 20},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 21}],
        "unified": {"memory.high": "50000000"},
    }


def test_hugepage_limits_left_out_without_the_hugetlb_controller() -> None:
    res = api_pb2.LinuxContainerResources(
        hugepage_limits=[api_pb2.HugepageLimit(page_size="2MB", limit=0)])
    assert resources.linux_resources(res, FakeHost(hugetlb=False)) == {}


@pytest.mark.parametrize(("limit", "swap", "controller", "expected"), [
    (100, 0, True, {"limit": 100, "swap": 100}),  # no swap beyond the limit
    (100, 300, True, {"limit": 100, "swap": 300}),
    (100, 300, False, {"limit": 100}),  # the kernel does not account swap
    (0, 300, True, {"swap": 300}),
])
def test_swap(limit: int, swap: int, controller: bool, expected: dict[str, int]) -> None:
    res = api_pb2.LinuxContainerResources(memory_limit_in_bytes=limit,
                                          memory_swap_limit_in_bytes=swap)
    assert resources.linux_resources(res, FakeHost(swap=controller))["memory"] == expected


def test_unified_refused_on_cgroup_v1() -> None:
    res = api_pb2.LinuxContainerResources(unified={"memory.high": "1"})
    with pytest.raises(InvalidArgument, match="cgroup v1"):
        resources.linux_resources(res, FakeHost(cgroup2=False))


def test_negative_quota_means_unlimited_and_is_kept() -> None:
    res = api_pb2.LinuxContainerResources(cpu_quota=-1)
    assert resources.linux_resources(res, FakeHost()) == {"cpu": {"quota": -1}}


@pytest.mark.parametrize(("parent", "expected"), [
    ("/kubepods/burstable/pod1234", "/kubepods/burstable/pod1234/c1"),
    ("kubepods/pod1/", "/kubepods/pod1/c1"),
    ("", "/crid/c1"),
    ("/", "/c1"),
])
def test_cgroups_path(parent: str, expected: str) -> None:
    assert resources.cgroups_path(parent, "c1") == expected


@pytest.mark.parametrize(("requested", "own", "expected"), [
    (1000, -999, 1000), (-997, -999, -997), (-997, 0, 0), (0, 0, 0), (500, 0, 500)])
def test_oom_score_adj_is_restricted(requested: int, own: int, expected: int) -> None:
    res = api_pb2.LinuxContainerResources(oom_score_adj=requested)
    assert resources.oom_score_adj(res, FakeHost(oom_score_adj=own)) == expected
