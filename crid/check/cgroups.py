"""cgroups without a pod or container, in every hierarchy of this node's layout.

Below the configured cgroup parent crid makes ``crid-<pod id>`` per pod
(when kubelet gave none), and below each pod's cgroup one ``<container id>``
per container. The parent is taken to be this crid's own (give each crid on
a node its own, as each kubelet has its own ``kubepods``): a ``crid-<id>``
there with no pod row, or a 64-hex child of a pod's cgroup with no
container row, is a leak. v1, hybrid and v2 alike: the layout
(``crid.oci.cgroups.layout``) says which hierarchies a cgroup lives in.
The repair is the daemon's ``Cgroup.kill_and_remove``: what is left inside
is a crid pod's or container's by its place and name, and no row owns it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from crid.check.findings import Finding
from crid.check.pods import POD_CGROUP_PREFIX as POD_PREFIX
from crid.check.view import View
from crid.oci.cgroups import layout
from crid.oci.cgroups.pod import Cgroup

_ID = re.compile(r"[0-9a-f]{64}")


def find(view: View, hierarchies: dict[str, str] | None = None) -> list[Finding]:
    mounts = layout.hierarchies() if hierarchies is None else hierarchies
    parent = "/" + view.config.cgroup_parent.strip("/")
    pod_cgroups = {p.cgroup_parent for p in view.pods.values() if p.cgroup_parent}
    found: list[Finding] = []
    for name in _children(mounts, parent):
        pod_id = name.removeprefix(POD_PREFIX)
        path = f"{parent.rstrip('/')}/{name}"
        if name.startswith(POD_PREFIX) and _ID.fullmatch(pod_id) and pod_id not in view.pods:
            found.append(_finding("cgroup-without-pod", path, mounts, "no pod row"))
            pod_cgroups.add(path)  # and what is below it, too
    for pod_cgroup in sorted(pod_cgroups):
        for name in _children(mounts, pod_cgroup):
            if _ID.fullmatch(name) and name not in view.containers:
                path = f"{pod_cgroup.rstrip('/')}/{name}"
                found.append(_finding("cgroup-without-container", path, mounts,
                                      "no container row"))
    # A cgroup reported as a pod's is removed with what is below it: drop doubles.
    pods = [f.subject for f in found if f.kind == "cgroup-without-pod"]
    return [f for f in found
            if f.kind == "cgroup-without-pod" or not any(f.subject.startswith(p + "/")
                                                         for p in pods)]


def _children(mounts: dict[str, str], path: str) -> list[str]:
    """Names of the cgroups right below ``path``, in any hierarchy."""
    names: set[str] = set()
    for mount in mounts.values():
        base = Path(mount) / path.lstrip("/")
        if base.is_dir():
            names.update(p.name for p in base.iterdir() if p.is_dir())
    return sorted(names)


def _finding(kind: str, path: str, mounts: dict[str, str], why: str) -> Finding:
    cgroup = Cgroup(path, mounts)
    where = sorted(k or "unified" for k, d in cgroup.dirs().items() if Path(d).is_dir())
    return Finding(kind, path, f"{why}; in {', '.join(where)}", _remover(cgroup),
                   "killed what was inside and removed it")


def _remover(cgroup: Cgroup) -> Callable[[], None]:
    return cgroup.kill_and_remove
