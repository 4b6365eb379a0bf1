"""cgroups for crid-runtime: detect v1 or v2, place a container, apply limits.

A container's cgroup is a dict ``{hierarchy: dir}`` kept in its state: on v1
one entry per mounted hierarchy (key = its controllers, e.g. ``"memory"`` or
``"name=systemd"``), on v2 a single entry under the key ``""``. A hybrid
node (v1 controllers plus a cgroup2 tree with none, at ``/sys/fs/cgroup/unified``)
gets both: the v1 entries and ``""`` for the cgroup2 tree, where the v2 device
program is attached beside the v1 ``devices`` rules. Each
controller lives in its own module (``v1/memory.py``, ``v2/pids.py``) with
``apply(resources, cgroup_dir)``, so it can be tested against a tmp dir.
"""

from __future__ import annotations

import errno
import os
import time

from crid.oci.cgroups import fs

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from typing import Any

    Json = dict[str, Any]

CGROUP_ROOT = "/sys/fs/cgroup"


def is_v2(root: str = CGROUP_ROOT) -> bool:
    return os.path.exists(os.path.join(root, "cgroup.controllers"))


def _v1_mounts() -> dict[str, str]:
    """{hierarchy key: mount point} for the cgroup v1 hierarchies mounted here, and
    ``""`` for a cgroup2 tree mounted beside them (hybrid)."""
    out: dict[str, str] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            sep = parts.index("-")
            if parts[sep + 1] == "cgroup2":
                out.setdefault("", parts[4])
                continue
            if parts[sep + 1] != "cgroup":
                continue
            opts = [o for o in parts[sep + 3].split(",")
                    if o not in ("rw", "ro") and not o.startswith("release_agent")
                    and o not in ("clone_children", "noprefix", "xattr", "cpuset_v2_mode")]
            out[",".join(opts)] = parts[4]
    return out


def _own_paths() -> dict[str, str]:
    out: dict[str, str] = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctl, path = line.rstrip("\n").split(":", 2)
            out[ctl] = path
    return out


def resolve(cgroups_path: str | None, cid: str) -> dict[str, str]:
    """The container's cgroup dirs; a relative path is under the runtime's own cgroup."""
    rel = cgroups_path or cid
    if ":" in rel and not rel.startswith("/"):
        from crid.oci.errors import InvalidArgument

        raise InvalidArgument(
            f"cgroupsPath {rel!r} looks like a systemd slice; only cgroupfs is supported")
    if is_v2():
        return place(rel, _own_paths(), {"": CGROUP_ROOT})
    return place(rel, _own_paths(), _v1_mounts())


def place(rel: str, own: dict[str, str], mounts: dict[str, str]) -> dict[str, str]:
    """Join ``rel`` under each hierarchy's mount point, below our own cgroup when
    relative. ``own`` is /proc/self/cgroup as {controllers: path}."""
    out = {}
    for key, mp in mounts.items():
        base = "/" if rel.startswith("/") else own.get(key, "/")
        out[key] = os.path.normpath(os.path.join(mp, (base + "/" + rel).lstrip("/")))
    return out


def controllers_of(key: str) -> list[str]:
    return [c for c in key.split(",") if c]


def create(paths: dict[str, str]) -> list[str]:
    """Make the dirs; return the ones made (for rollback), deepest last."""
    made: list[str] = []
    for key, d in paths.items():
        missing = []
        cur = d
        while not os.path.isdir(cur):
            missing.append(cur)
            cur = os.path.dirname(cur)
        for m in reversed(missing):
            os.mkdir(m)
            made.append(m)
            if "cpuset" in controllers_of(key):
                fs.copy_cpuset_from_parent(m)
        if not key:
            fs.enable_v2_controllers(d)
    return made


def load_device_program(paths: dict[str, str], rules: list[Json] | None) -> int | None:
    """Load the cgroup2 device program for ``rules`` ahead of :func:`apply` (its fd),
    None when the container has no cgroup2 dir."""
    if "" not in paths:
        return None
    from crid.oci.cgroups.v2 import devices

    return devices.load(rules)


def apply(paths: dict[str, str], resources: Json | None, on_create: bool,
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


def with_device_nodes(rules: list[Json] | None, linux: Json) -> list[Json]:
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


def destroy(paths: dict[str, str], timeout: float = 5.0) -> None:
    """Remove the leaf dirs, waiting briefly for exiting processes to leave."""
    deadline = time.monotonic() + timeout
    for d in paths.values():
        while True:
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if e.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)
