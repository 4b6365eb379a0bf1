"""Pods: rows without their pinned namespaces, pod state dirs (pins) and infra
processes without a row.

A ready pod's namespaces stay pinned (bind mounts of nsfs) under
``<runroot>/pods/<id>`` until RemovePodSandbox; a dir there with no row is
what a crash mid-create (or a lost row) left, and holds a network namespace
alive with its veth. The repair is the daemon's own: ``release_pod_dir``
(unpin, unmount /dev/shm, delete), ``InfraProcesses.stop`` for the PID 1
(catatonit) of a pod sharing its PID namespace whose namespaces are such a
dir's pins, and a ready pod that lost its namespaces is marked not ready,
as the daemon's recovery does.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable
from pathlib import Path

from crid.check.findings import Finding
from crid.check.view import View, writable
from crid.network import namespaces
from crid.oci.cgroups.pod import Cgroup
from crid.oci.state import proc_start_time, read_proc_stat, stat_parent
from crid.sandbox.context import release_pod_dir
from crid.sandbox.infra import Infra, InfraProcesses
from crid.sandbox.records import NOTREADY, READY

POD_CGROUP_PREFIX = "crid-"  # crid.sandbox.run names a pod's cgroup crid-<id> below the parent


def find(view: View) -> list[Finding]:
    found: list[Finding] = []
    for pod in view.pods.values():
        lost = sorted(k for k, p in pod.namespaces.items() if not namespaces.is_pinned(p))
        if lost and pod.state == READY:
            found.append(Finding(
                "pod-without-namespace", pod.id,
                f"ready pod's {', '.join(lost)} namespace pin is gone ({pod.pod_dir})",
                _marker(view, pod.id), "marked the pod not ready"))
    pods_dir = view.runroot / "pods"
    orphans: list[Path] = []
    for pod_dir in sorted(pods_dir.iterdir()) if pods_dir.is_dir() else []:
        if pod_dir.name in view.pods:
            continue
        orphans.append(pod_dir)
        pins = sorted(p.name for p in pod_dir.iterdir() if p.name in namespaces.PIN_FILES
                      and namespaces.is_pinned(str(p))) if pod_dir.is_dir() else []
        detail = f"pinned: {', '.join(pins)}" if pins else "no pins"
        found.append(Finding("pod-dir-without-pod", str(pod_dir), f"no pod row; {detail}",
                             _releaser(pod_dir), "unpinned and removed the pod dir"))
    found += _infra(view, orphans)
    return found


def _infra(view: View, orphans: list[Path]) -> list[Finding]:
    """catatonit (a pod's PID 1) in the namespaces of a pod dir no row owns."""
    pins: dict[tuple[int, int], str] = {}
    for pod_dir in orphans:
        for kind in namespaces.KINDS:
            with contextlib.suppress(OSError):
                info = os.stat(pod_dir / kind)
                pins[(info.st_dev, info.st_ino)] = pod_dir.name
    found: list[Finding] = []
    for pid in _pids() if pins else []:
        try:
            if os.path.basename(os.readlink(f"/proc/{pid}/exe")) != "catatonit":
                continue
            owners = {pins.get(_inode(f"/proc/{pid}/ns/{kind}")) for kind in namespaces.KINDS}
            started = proc_start_time(pid)
            parent = _parent(pid)
        except (OSError, ValueError):
            continue  # gone meanwhile
        if started is None:
            continue  # a zombie: its parent reaps it
        infra = Infra(pid, started, parent)
        owner = next((o for o in owners if o), None)
        if owner is not None:
            found.append(Finding("infra-without-pod", f"pid {pid}",
                                 f"the PID 1 (catatonit) of pod {owner}, which has no row",
                                 functools.partial(InfraProcesses().stop, infra), "killed it"))
    return found


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _inode(path: str) -> tuple[int, int]:
    info = os.stat(path)
    return info.st_dev, info.st_ino


def _parent(pid: int) -> int:
    stat = read_proc_stat(pid)
    if stat is None:
        raise ProcessLookupError(pid)  # gone: the caller's OSError path
    return stat_parent(stat)


def traced(view: View, pod_id: str) -> bool:
    """Does this crid hold something of the pod ``pod_id`` (a state dir, a cgroup)?"""
    if (view.runroot / "pods" / pod_id).exists():
        return True
    path = f"{view.config.cgroup_parent.rstrip('/')}/{POD_CGROUP_PREFIX}{pod_id}"
    return Cgroup(path).exists()


def _marker(view: View, pod_id: str) -> Callable[[], None]:
    def repair() -> None:
        db = writable(view)
        try:
            db.execute("UPDATE sandboxes SET state = ? WHERE id = ?", (NOTREADY, pod_id))
        finally:
            db.close()
    return repair


def _releaser(pod_dir: Path) -> Callable[[], None]:
    return lambda: release_pod_dir(pod_dir)
