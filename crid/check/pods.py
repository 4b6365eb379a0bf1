"""Pods: rows without their pinned namespaces, pod state dirs (pins) without a row.

A ready pod's namespaces stay pinned (bind mounts of nsfs) under
``<runroot>/pods/<id>`` until RemovePodSandbox; a dir there with no row is
what a crash mid-create (or a lost row) left, and holds a network namespace
alive with its veth. The repair is the daemon's own: ``release_pod_dir``
(unpin, unmount /dev/shm, delete), and a ready pod that lost its namespaces
is marked not ready, as the daemon's recovery does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from crid.check.findings import Finding
from crid.check.view import View, writable
from crid.network import namespaces
from crid.oci.cgroups.pod import Cgroup
from crid.sandbox.context import release_pod_dir
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
    for pod_dir in sorted(pods_dir.iterdir()) if pods_dir.is_dir() else []:
        if pod_dir.name in view.pods:
            continue
        pins = sorted(p.name for p in pod_dir.iterdir() if p.name in namespaces.PIN_FILES
                      and namespaces.is_pinned(str(p))) if pod_dir.is_dir() else []
        detail = f"pinned: {', '.join(pins)}" if pins else "no pins"
        found.append(Finding("pod-dir-without-pod", str(pod_dir), f"no pod row; {detail}",
                             _releaser(pod_dir), "unpinned and removed the pod dir"))
    return found


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
