"""Resources between CRI's and NRI's shapes, and a created container as NRI sees it."""

from __future__ import annotations

from cri_api.v1 import api_pb2
from crid.oci.runtime_spec import Spec

from crid.nri import convert


def test_cri_resources_survive_a_trip_through_nri() -> None:
    cri = api_pb2.LinuxContainerResources(
        memory_limit_in_bytes=1 << 28, memory_swap_limit_in_bytes=1 << 29, cpu_shares=512,
        cpu_quota=50000, cpu_period=100000, cpuset_cpus="0-1", cpuset_mems="0",
        unified={"memory.high": "max"})
    assert api_pb2.LinuxContainerResources(
        **convert.cri_resources(convert.nri_resources(cri))) == cri


def test_unset_values_stay_unset() -> None:
    assert convert.cri_resources(convert.nri_resources(
        api_pb2.LinuxContainerResources())) == {}


def test_container_being_created_is_described_from_its_spec() -> None:
    spec: Spec = {
        "process": {"args": ["sh"], "env": ["A=1"], "oomScoreAdj": 5,
                    "user": {"uid": 1, "gid": 2, "additionalGids": [3]},
                    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 9, "soft": 8}]},
        "mounts": [{"destination": "/x", "type": "bind", "source": "/y", "options": ["ro"]}],
        "hooks": {"createRuntime": [{"path": "/h", "timeout": 3}]},
        "linux": {"cgroupsPath": "/p/c", "resources": {"memory": {"limit": 7},
                                                        "pids": {"limit": 9}}}}
    message = convert.creating("cid", "pid", "name", {"l": "1"}, {"a": "2"}, spec)
    assert (message.id, message.pod_sandbox_id, message.name) == ("cid", "pid", "name")
    assert list(message.args) == ["sh"] and list(message.env) == ["A=1"]
    assert message.mounts[0].destination == "/x"
    assert message.hooks.create_runtime[0].timeout.value == 3
    assert message.linux.oom_score_adj.value == 5
    assert message.linux.resources.memory.limit.value == 7
    assert message.linux.resources.pids.limit == 9
    assert (message.user.uid, list(message.user.additional_gids)) == (1, [3])
    assert message.rlimits[0].soft == 8
