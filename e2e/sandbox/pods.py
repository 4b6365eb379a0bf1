"""Helpers for pod sandbox e2e tests: a private pod network per daemon, pod
configs, and looking inside a pod's namespaces from the test."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cri_api.v1 import api_pb2

from e2e.fixtures.daemon import CRID, CridDaemon, remove_workdir

CGROUP_ROOT = Path("/sys/fs/cgroup")
IPAM_ROOT = Path("/var/lib/cni/networks")


class PodNet:
    """A bridge name, subnet, network name and cgroup parent no other test uses."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:8]
        self.tag = tag
        self.bridge = f"crt{tag}"
        # A /24 inside 10.88.0.0/16, picked at random: concurrent test daemons
        # (each with its own bridge) must not route the same subnet.
        self.third = random.randint(16, 254)
        self.subnet = f"10.88.{self.third}.0/24"
        self.name = f"crid-test-{tag}"
        self.cgroup_parent = f"/crid-test-{tag}"
        # Where host-local keeps the default network's reservations (its own default).
        self.ipam_dir = IPAM_ROOT / self.name

    def config_toml(self, extra: str = "") -> str:
        return (
            "[crid.network]\n"
            f'default_bridge = "{self.bridge}"\n'
            f'default_subnet = "{self.subnet}"\n'
            f'default_network_name = "{self.name}"\n'
            f"{extra}"
            "[crid.runtime]\n"
            f'cgroup_parent = "{self.cgroup_parent}"\n'
        )

    def cgroup_dirs(self) -> list[Path]:
        """Every dir below the cgroup parent, in every v1 controller (or v2).
        os.walk shrugs at a dir removed while it looks (a pod going meanwhile)."""
        return [Path(parent, name) for top in CGROUP_ROOT.iterdir()
                for parent, dirs, _ in os.walk(top / self.cgroup_parent.lstrip("/"))
                for name in dirs]

    def cleanup(self) -> None:
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)
        shutil.rmtree(self.ipam_dir, ignore_errors=True)
        for top in CGROUP_ROOT.iterdir():
            base = top / self.cgroup_parent.lstrip("/")
            if base.is_dir():
                for child in sorted(base.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                    with contextlib.suppress(OSError):
                        child.rmdir()
                with contextlib.suppress(OSError):
                    base.rmdir()


@contextlib.contextmanager
def pod_daemon(extra_toml: str = "", extra_args: tuple[str, ...] = (),
               cni_conflist: dict[str, Any] | None = None, *, crid: Path = CRID,
               own_nri_socket: bool = True) -> Iterator[tuple[CridDaemon, PodNet]]:
    """A started daemon (``crid``: which install's; ``own_nri_socket`` false for
    one older than NRI) on a private pod network; everything removed afterwards."""
    net = PodNet()
    workdir = Path(tempfile.mkdtemp(prefix="crid-pod-", dir="/tmp"))
    daemon = CridDaemon(workdir, extra_args=extra_args,
                        config_toml=net.config_toml(extra_toml), crid=crid,
                        own_nri_socket=own_nri_socket)
    if cni_conflist is not None:
        (daemon.cni_config_dir / "10-test.conflist").write_text(json.dumps(cni_conflist))
    try:
        daemon.start()
        yield daemon, net
    finally:
        if daemon.process is not None:
            with contextlib.suppress(Exception):
                remove_all_pods(daemon)
            daemon.stop()
        remove_workdir(workdir)
        net.cleanup()


def remove_all_pods(daemon: CridDaemon) -> None:
    for pod in daemon.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items:
        daemon.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod.id))
        daemon.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod.id))


def pod_config(name: str | None = None, **fields: Any) -> api_pb2.PodSandboxConfig:
    name = name or f"pod-{uuid.uuid4().hex[:8]}"
    config = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="e2e"),
        hostname=name, **fields,
    )
    return config


def namespace_options(network: Any = api_pb2.POD, pid: Any = api_pb2.CONTAINER,
                      ipc: Any = api_pb2.POD) -> api_pb2.LinuxPodSandboxConfig:
    return api_pb2.LinuxPodSandboxConfig(security_context=api_pb2.LinuxSandboxSecurityContext(
        namespace_options=api_pb2.NamespaceOption(network=network, pid=pid, ipc=ipc)))


def run_pod(daemon: CridDaemon, config: api_pb2.PodSandboxConfig) -> str:
    return str(daemon.runtime.RunPodSandbox(
        api_pb2.RunPodSandboxRequest(config=config)).pod_sandbox_id)


def info(daemon: CridDaemon, pod_id: str) -> dict[str, Any]:
    response = daemon.runtime.PodSandboxStatus(
        api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=True))
    found: dict[str, Any] = json.loads(response.info["info"])
    found["status"] = response.status
    return found


def stop_remove(daemon: CridDaemon, pod_id: str) -> None:
    daemon.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id))
    daemon.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id))


def nsenter(namespaces: dict[str, str], *command: str) -> str:
    joins = [f"--{kind}={path}" for kind, path in namespaces.items()]
    done = subprocess.run(["nsenter", *joins, "--", *command], capture_output=True, text=True,
                          check=True, timeout=10)
    return done.stdout
