"""Merging plugins' container adjustments into the runtime-spec, with ownership."""

from __future__ import annotations

import pytest
from crid.api import nri_pb2
from crid.oci.runtime_spec import Spec

from crid.errors import InvalidArgument
from crid.nri.adjust import Adjuster


def _spec() -> Spec:
    return {"process": {"args": ["sleep", "1"], "env": ["PATH=/bin", "DROP=1"]},
            "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
            "linux": {"resources": {}}, "annotations": {"a": "1"}}


def test_env_mount_hook_and_resources_are_applied() -> None:
    spec = _spec()
    adjust = nri_pb2.ContainerAdjustment(
        env=[nri_pb2.KeyValue(key="INJECTED", value="yes"), nri_pb2.KeyValue(key="-DROP")],
        mounts=[nri_pb2.Mount(destination="/data", source="/srv", type="bind",
                              options=["rbind", "ro"])],
        annotations={"added": "x", "-a": ""})
    adjust.hooks.prestart.add(path="/usr/bin/true", args=["true"])
    adjust.linux.resources.memory.limit.value = 1 << 30
    adjust.linux.resources.cpu.cpus = "0"
    adjust.linux.oom_score_adj.value = 500
    Adjuster(spec).apply("00-a", adjust)
    assert spec["process"]["env"] == ["PATH=/bin", "INJECTED=yes"]
    assert {"destination": "/data", "type": "bind", "source": "/srv",
            "options": ["rbind", "ro"]} in spec["mounts"]
    assert spec["hooks"]["prestart"] == [{"path": "/usr/bin/true", "args": ["true"]}]
    assert spec["annotations"] == {"added": "x"}
    assert spec["linux"]["resources"]["memory"] == {"limit": 1 << 30}
    assert spec["linux"]["resources"]["cpu"] == {"cpus": "0"}
    assert spec["process"]["oomScoreAdj"] == 500


def test_two_plugins_on_one_field_is_an_error_naming_both() -> None:
    adjuster = Adjuster(_spec())
    adjuster.apply("00-first", nri_pb2.ContainerAdjustment(
        env=[nri_pb2.KeyValue(key="X", value="1")]))
    with pytest.raises(InvalidArgument, match="00-first and 10-second both adjust env X"):
        adjuster.apply("10-second", nri_pb2.ContainerAdjustment(
            env=[nri_pb2.KeyValue(key="X", value="2")]))


def test_hooks_from_two_plugins_accumulate() -> None:
    spec = _spec()
    adjuster = Adjuster(spec)
    for plugin in ("00-a", "10-b"):
        adjust = nri_pb2.ContainerAdjustment()
        adjust.hooks.create_runtime.add(path=f"/hooks/{plugin}")
        adjuster.apply(plugin, adjust)
    assert [h["path"] for h in spec["hooks"]["createRuntime"]] == ["/hooks/00-a", "/hooks/10-b"]


def test_what_crid_cannot_honour_fails_closed() -> None:
    adjust = nri_pb2.ContainerAdjustment()
    adjust.linux.seccomp_policy.default_action = "SCMP_ACT_ALLOW"
    with pytest.raises(InvalidArgument, match="seccomp_policy"):
        Adjuster(_spec()).apply("00-a", adjust)
    with pytest.raises(InvalidArgument, match="no CDI support"):
        Adjuster(_spec()).apply("00-a", nri_pb2.ContainerAdjustment(
            CDI_devices=[nri_pb2.CDIDevice(name="vendor.com/gpu=0")]))
    with pytest.raises(InvalidArgument, match="not absolute"):
        Adjuster(_spec()).apply("00-a", nri_pb2.ContainerAdjustment(
            mounts=[nri_pb2.Mount(destination="data", source="/srv")]))


def test_cdi_devices_go_through_the_injector() -> None:
    seen: list[list[str]] = []
    spec = _spec()
    Adjuster(spec, cdi=lambda names, s: seen.append(names)).apply(
        "00-a", nri_pb2.ContainerAdjustment(CDI_devices=[nri_pb2.CDIDevice(name="v.com/d=1")]))
    assert seen == [["v.com/d=1"]]
