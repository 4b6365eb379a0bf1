"""Bundles whose config.json is crid's own: built by ``build_spec`` from a CRI
CreateContainer request, as the daemon does, then run by either handler.

The bundle is the ``bundle`` fixture's (busybox rootfs, cgroup cleaned up
after); only its config is replaced, keeping the fixture's cgroup path so
its clean-up finds it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from cri_api.v1 import api_pb2
from crid.oci.spec import ImageConfig, PodFacts, build_spec

from crid.jsontypes import Json
from e2e.fixtures.bundle import Bundle
from tests.oci.spec.runtime_spec_check import check

PROBE_SOURCE = Path(__file__).resolve().parent / "seccomp_probe.c"


def compile_static(source: Path, out: Path) -> Path:
    subprocess.run(["gcc", "-static", "-O2", "-Wall", "-o", str(out), str(source)],
                   check=True, capture_output=True, timeout=120)
    return out


def cri_config(bundle: Bundle, command: list[str],
               sc: api_pb2.LinuxContainerSecurityContext, *,
               working_dir: str = "") -> Bundle:
    """Replace the bundle's config with crid's spec for ``command`` under ``sc``
    (no pod namespaces: every namespace is new) and write it."""
    config = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name="probe"),
        image=api_pb2.ImageSpec(image="busybox"),
        command=command[:1], args=command[1:], working_dir=working_dir,
        linux=api_pb2.LinuxContainerConfig(security_context=sc),
    )
    sandbox = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name="probe-pod", namespace="e2e", uid="u"),
        hostname="probe-pod", linux=api_pb2.LinuxPodSandboxConfig())
    image = ImageConfig(env=("PATH=/bin",))
    built = build_spec("probe", config, sandbox, image, PodFacts("none"), str(bundle.rootfs))
    assert check(built.spec) == []
    spec: Json = json.loads(json.dumps(built.spec))  # as the fixture holds it: any JSON
    spec["linux"]["cgroupsPath"] = bundle.config["linux"]["cgroupsPath"]
    bundle.config = spec
    return bundle.write()


def fields(output: str) -> dict[str, str]:
    """``key=value`` lines as a dict."""
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
