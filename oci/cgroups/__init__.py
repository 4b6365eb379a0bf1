"""crid's cgroups, v1, hybrid and v2, for containers (crid-runtime) and pods (the daemon).

A cgroup is a dict ``{hierarchy: dir}`` (a container keeps it in its state):
on v1 one entry per mounted hierarchy (key = its controllers, e.g.
``"memory"`` or ``"name=systemd"``), on v2 a single entry under the key
``""``. A hybrid node (v1 controllers plus a cgroup2 tree with none, at
``/sys/fs/cgroup/unified``) gets both: the v1 entries and ``""`` for the
cgroup2 tree, where the v2 device program is attached beside the v1
``devices`` rules.

The package, one concern per module:

- ``layout``: which of v1, hybrid and v2 this node has, its hierarchies, and
  what they offer (swap, hugetlb limits): the one place that detects.
- ``tree``: making and removing a cgroup in every hierarchy, killing what is
  left inside.
- ``v1/<controller>.py``, ``v2/<controller>.py``: one writer per controller,
  ``apply(resources, cgroup_dir)`` over runtime-spec ``linux.resources``,
  testable against a tmp dir; routed to by :func:`apply` here.
- ``devices`` (the rule model both versions enforce), ``v2/devices`` (the BPF
  program), ``freezer`` (pause), ``fs`` (reading and writing cgroup files).
- ``pod``: the pod cgroup the daemon makes on RunPodSandbox (daemon only).
- this module: placing a container's cgroup and the verbs' operations on it.

Only ``layout`` and ``fs`` come with this module (the verbs that make or
remove a cgroup import ``tree``): crid-runtime starts for every container
and pays for each import.
"""

from __future__ import annotations

import os

from crid.oci.cgroups import fs, layout
from crid.oci.cgroups.layout import controllers_of

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from crid.oci.runtime_spec import DeviceRule, Linux, Resources


def resolve(cgroups_path: str | None, cid: str) -> dict[str, str]:
    """The container's cgroup dirs; a relative path is under the runtime's own cgroup."""
    rel = cgroups_path or cid
    if ":" in rel and not rel.startswith("/"):
        from crid.oci.errors import InvalidArgument

        raise InvalidArgument(
            f"cgroupsPath {rel!r} looks like a systemd slice; only cgroupfs is supported")
    return place(rel, layout.own_paths(), layout.hierarchies())


def place(rel: str, own: dict[str, str], mounts: dict[str, str]) -> dict[str, str]:
    """Join ``rel`` under each hierarchy's mount point, below our own cgroup when
    relative. ``own`` is /proc/self/cgroup as {controllers: path}."""
    out = {}
    for key, mp in mounts.items():
        base = "/" if rel.startswith("/") else own.get(key, "/")
        out[key] = os.path.normpath(os.path.join(mp, (base + "/" + rel).lstrip("/")))
    return out


def load_device_program(paths: dict[str, str], rules: list[DeviceRule] | None) -> int | None:
    """Load the cgroup2 device program for ``rules`` ahead of :func:`apply` (its fd),
    None when the container has no cgroup2 dir."""
    if "" not in paths:
        return None
    from crid.oci.cgroups.v2 import devices

    return devices.load(rules)


def apply(paths: dict[str, str], resources: Resources | None, on_create: bool,
          device_program: int | None = None) -> None:
    """Write ``resources`` to the container's cgroups. Device rules are applied at
    create and whenever ``resources`` holds a ``devices`` list (each time as the
    whole list: deny all, the rules, the defaults); on cgroup2 (pure v2, or the
    hybrid tree) as a BPF program: ``device_program`` when it was loaded ahead
    for the same rules (this closes it)."""
    if resources is None:
        return
    try:
        if "" in paths and len(paths) == 1:
            from crid.oci.cgroups import v2

            v2.apply(resources, paths[""])
        else:
            from crid.oci.cgroups import v1

            for key, d in paths.items():
                if key:
                    v1.apply(controllers_of(key), resources, d, on_create)
    except BaseException:
        if device_program is not None:
            os.close(device_program)
        raise
    if "" in paths and (on_create or resources.get("devices") is not None):
        from crid.oci.cgroups.v2 import devices

        devices.apply(resources.get("devices"), paths[""], prog=device_program)


def with_device_nodes(rules: list[DeviceRule] | None, linux: Linux) -> list[DeviceRule]:
    """``rules`` followed by an allow rule for each node in ``linux.devices`` (a
    ``u`` node is a char device; a fifo needs no rule), as at create."""
    out = list(rules or [])
    for dv in linux.get("devices") or []:
        kind = {"u": "c"}.get(dv.get("type"), dv.get("type"))
        if kind in ("b", "c"):
            out.append({"allow": True, "type": kind, "major": dv.get("major"),
                        "minor": dv.get("minor"), "access": "rwm"})
    return out


def join(paths: dict[str, str], pid: int) -> None:
    for d in paths.values():
        fs.write(d, "cgroup.procs", str(pid))


def pids(paths: dict[str, str]) -> list[int]:
    for _, d in sorted(paths.items(), key=lambda kv: kv[0] not in ("pids", "memory", "")):
        try:
            with open(os.path.join(d, "cgroup.procs")) as f:
                return [int(x) for x in f.read().split()]
        except FileNotFoundError:
            continue
    return []


def _freezer_dir(paths: dict[str, str]) -> tuple[str, bool] | None:
    if "" in paths and len(paths) == 1:
        return paths[""], True
    for key, d in paths.items():
        if "freezer" in controllers_of(key):
            return d, False
    return None


def is_frozen(paths: dict[str, str]) -> bool:
    fd = _freezer_dir(paths)
    if fd is None:
        return False
    from crid.oci.cgroups import freezer

    return freezer.is_frozen(fd[0], v2=fd[1])


def freeze(paths: dict[str, str], frozen: bool) -> None:
    fd = _freezer_dir(paths)
    if fd is None:
        from crid.oci.errors import FailedPrecondition

        raise FailedPrecondition("no freezer cgroup for this container")
    from crid.oci.cgroups import freezer

    freezer.set_frozen(fd[0], frozen, v2=fd[1])
