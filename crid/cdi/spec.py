"""One CDI spec file: read it (JSON or YAML, bounded), check it, describe it.

A spec file names a ``kind`` (``vendor.com/class``), its ``devices`` and the
``containerEdits`` that go with them (spec-wide ones apply once whenever any
of its devices is injected). Parsing is strict, as upstream's: an unknown
key, a wrong type, an unknown ``cdiVersion`` or one older than the fields
used need (``hostPath`` needs 0.5.0, ``additionalGids`` 0.7.0, ...) make the
whole file broken, and a broken file gives no devices.

Spec files are root's configuration, but they are still outside input and
what they ask for ends up in containers, so this module fails closed:

- a file is at most ``MAX_FILE_BYTES``; YAML aliases are refused (an alias
  bomb expands a small file into a huge tree);
- container paths (device nodes, mounts) must be absolute without ``..``;
- a device node's ``hostPath`` must be absolute without ``..`` (that it is
  an existing char or block device is checked when it is injected, in
  ``crid.cdi.edits``: the node may appear after the file);
- a bind mount's ``hostPath`` must be absolute without ``..``; a hook's
  ``path`` absolute; its timeout positive;
- ``intelRdt`` and ``netDevices`` are parsed but crid cannot apply them: a
  device that needs them is refused at injection instead of half-working.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from crid.cdi import names
from crid.jsontypes import Json

MAX_FILE_BYTES = 4 * 1024 * 1024
SUFFIXES = (".json", ".yaml")
# Known versions, oldest first; 0.1 and 0.2 had another layout.
VERSIONS = ("0.3.0", "0.4.0", "0.5.0", "0.6.0", "0.7.0", "0.8.0", "1.0.0", "1.1.0")
HOOK_NAMES = frozenset({"prestart", "createRuntime", "createContainer", "startContainer",
                        "poststart", "poststop"})
NO_PERMISSIONS = "none"  # a node without a cgroup rule
NODE_TYPES = ("c", "u", "b")  # char, unbuffered char, block; never a fifo or a file
MAX_ID = 2**32 - 1


class SpecError(ValueError):
    """The file is not a valid CDI spec; the message says where and why."""


@dataclass(frozen=True)
class DeviceNode:
    path: str  # in the container
    host_path: str  # on the host; ``path`` when the file gives none
    type: str = ""  # "" = the host node's
    major: int | None = None
    minor: int | None = None
    file_mode: int | None = None
    permissions: str = ""  # "" = rwm; "none" = no cgroup rule
    uid: int | None = None
    gid: int | None = None


@dataclass(frozen=True)
class Mount:
    host_path: str
    container_path: str
    type: str = ""
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class Hook:
    hook_name: str
    path: str
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    timeout: int | None = None


@dataclass(frozen=True)
class Edits:
    env: tuple[str, ...] = ()
    device_nodes: tuple[DeviceNode, ...] = ()
    mounts: tuple[Mount, ...] = ()
    hooks: tuple[Hook, ...] = ()
    additional_gids: tuple[int, ...] = ()
    unsupported: tuple[str, ...] = ()  # fields present that crid does not apply

    def empty(self) -> bool:
        return not (self.env or self.device_nodes or self.mounts or self.hooks
                    or self.additional_gids or self.unsupported)


@dataclass(frozen=True)
class Spec:
    path: str
    priority: int  # index of its dir: a later dir overrides an earlier one
    vendor: str
    cls: str
    edits: Edits
    devices: Mapping[str, Edits] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return f"{self.vendor}/{self.cls}"


# --- reading -------------------------------------------------------------------


def read(path: str, priority: int) -> Spec:
    """Read and check the spec file at ``path``; SpecError when it is broken,
    OSError when it cannot be read."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise SpecError(f"{path}: not a regular file")
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise SpecError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    return parse(data, path, priority)


def parse(data: bytes, path: str, priority: int) -> Spec:
    """Check the bytes of a spec file; ``path``'s suffix says JSON or YAML."""
    try:
        text = data.decode("utf-8")
        tree = _load_yaml(text) if path.endswith(".yaml") else json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSON, UTF-8 and YAML errors
        raise SpecError(f"{path}: not valid {_format(path)}: {_first_line(exc)}") from None
    return _spec(tree, path, priority)


def _format(path: str) -> str:
    return "YAML" if path.endswith(".yaml") else "JSON"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())[:300]


def _load_yaml(text: str) -> Any:
    import yaml  # only when a YAML spec file exists

    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise ValueError("YAML aliases are not accepted in CDI spec files")
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from None


# --- checking ------------------------------------------------------------------


class _Where:
    """The JSON path of the value being checked, for messages."""

    def __init__(self, path: str) -> None:
        self.file = path

    def fail(self, where: str, problem: str) -> SpecError:
        return SpecError(f"{self.file}: {where}: {problem}")


def _object(w: _Where, value: Any, where: str, keys: Mapping[str, bool]) -> Json:
    """``value`` as an object with only ``keys`` (key -> required)."""
    if not isinstance(value, dict):
        raise w.fail(where, f"expected an object, got {_kind(value)}")
    unknown = sorted(str(k) for k in value if k not in keys)
    if unknown:
        raise w.fail(where, f"unknown field {unknown[0]!r}")
    missing = [k for k, required in keys.items() if required and k not in value]
    if missing:
        raise w.fail(where, f"{missing[0]!r} is required")
    return value


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _str(w: _Where, value: Any, where: str, *, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise w.fail(where, f"expected a string, got {_kind(value)}")
    if not value and not empty:
        raise w.fail(where, "must not be empty")
    if "\0" in value:
        raise w.fail(where, "contains a NUL character")
    return value


def _int(w: _Where, value: Any, where: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise w.fail(where, f"expected an integer, got {_kind(value)}")
    if not low <= value <= high:
        raise w.fail(where, f"{value} is out of range {low}..{high}")
    return value


def _list(w: _Where, value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise w.fail(where, f"expected a list, got {_kind(value)}")
    return value


def _strings(w: _Where, value: Any, where: str) -> tuple[str, ...]:
    return tuple(_str(w, v, f"{where}[{i}]", empty=True)
                 for i, v in enumerate(_list(w, value, where)))


def _env(w: _Where, value: Any, where: str) -> tuple[str, ...]:
    found = _strings(w, value, where)
    for i, entry in enumerate(found):
        if entry.find("=") <= 0:
            raise w.fail(f"{where}[{i}]", f"{entry!r} is not NAME=VALUE")
    return found


def _path(w: _Where, value: Any, where: str, *, in_container: bool = False) -> str:
    """An absolute path without '..'; returned normalised. One in the container
    must name something below its root, never the root itself."""
    text = _str(w, value, where)
    if not text.startswith("/"):
        raise w.fail(where, f"{text!r} is not an absolute path")
    if ".." in text.split("/"):
        raise w.fail(where, f"{text!r} contains '..'")
    path = os.path.normpath("/" + text.lstrip("/"))  # normpath keeps a leading "//"
    if in_container and path == "/":
        raise w.fail(where, "must name a path below the container's root, not '/'")
    return path


def _annotations(w: _Where, value: Any, where: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, dict):
        raise w.fail(where, f"expected an object, got {_kind(value)}")
    for key, text in value.items():
        _str(w, key, f"{where} key")
        _str(w, text, f"{where}.{key}", empty=True)
    return bool(value)


def _spec(tree: Any, path: str, priority: int) -> Spec:
    w = _Where(path)
    top = _object(w, tree, "top level", {"cdiVersion": True, "kind": True,
                                         "annotations": False, "devices": True,
                                         "containerEdits": False})
    version = _str(w, top["cdiVersion"], "cdiVersion").removeprefix("v")
    if version not in VERSIONS:
        raise w.fail("cdiVersion", f"{version!r} is not a CDI version crid knows "
                     f"({', '.join(VERSIONS)})")
    kind = _str(w, top["kind"], "kind")
    vendor, cls = names.split_kind(kind)
    if not vendor:
        raise w.fail("kind", f"{kind!r} is not vendor.com/class")
    for problem in (names.vendor_or_class_problem(vendor), names.vendor_or_class_problem(cls)):
        if problem:
            raise w.fail("kind", problem)
    need = _Needs()
    if _annotations(w, top.get("annotations"), "annotations"):
        need.at_least("0.6.0", "annotations")
    if "." in cls:
        need.at_least("0.6.0", "a '.' in the class of kind")
    edits = _edits(w, top.get("containerEdits"), "containerEdits", need)

    devices: dict[str, Edits] = {}
    listed = _list(w, top["devices"], "devices")
    if not listed:
        raise w.fail("devices", "a spec needs at least one device")
    for i, item in enumerate(listed):
        where = f"devices[{i}]"
        dev = _object(w, item, where, {"name": True, "annotations": False,
                                        "containerEdits": True})
        name = _str(w, dev["name"], f"{where}.name")
        problem = names.device_name_problem(name)
        if problem:
            raise w.fail(f"{where}.name", problem)
        if name[0].isdigit():
            need.at_least("0.5.0", "a device name starting with a digit")
        if name in devices:
            raise w.fail(f"{where}.name", f"device {name!r} is listed twice")
        if _annotations(w, dev.get("annotations"), f"{where}.annotations"):
            need.at_least("0.6.0", "annotations")
        device_edits = _edits(w, dev["containerEdits"], f"{where}.containerEdits", need)
        if device_edits.empty():
            raise w.fail(f"{where}.containerEdits", "a device needs at least one edit")
        devices[name] = device_edits
    if VERSIONS.index(version) < VERSIONS.index(need.version):
        raise w.fail("cdiVersion", f"{version} is too old for {need.reason} "
                     f"(needs {need.version} or later)")
    return Spec(os.path.normpath(path), priority, vendor, cls, edits, devices)


class _Needs:
    """The oldest cdiVersion that has every field used so far."""

    def __init__(self) -> None:
        self.version = VERSIONS[0]
        self.reason = ""

    def at_least(self, version: str, reason: str) -> None:
        if VERSIONS.index(version) > VERSIONS.index(self.version):
            self.version, self.reason = version, reason


_EDIT_KEYS = {"env": False, "deviceNodes": False, "mounts": False, "hooks": False,
              "additionalGids": False, "intelRdt": False, "netDevices": False}


def _edits(w: _Where, value: Any, where: str, need: _Needs) -> Edits:
    if value is None:
        return Edits()
    e = _object(w, value, where, _EDIT_KEYS)
    nodes = tuple(_node(w, v, f"{where}.deviceNodes[{i}]", need)
                  for i, v in enumerate(_list(w, e.get("deviceNodes"), f"{where}.deviceNodes")))
    mounts = tuple(_mount(w, v, f"{where}.mounts[{i}]", need)
                   for i, v in enumerate(_list(w, e.get("mounts"), f"{where}.mounts")))
    hooks = tuple(_hook(w, v, f"{where}.hooks[{i}]")
                  for i, v in enumerate(_list(w, e.get("hooks"), f"{where}.hooks")))
    gids = tuple(_int(w, v, f"{where}.additionalGids[{i}]", 0, MAX_ID)
                 for i, v in enumerate(_list(w, e.get("additionalGids"),
                                             f"{where}.additionalGids")))
    if gids:
        need.at_least("0.7.0", "additionalGids")
    unsupported = []
    if e.get("intelRdt") is not None:
        rdt = _object(w, e["intelRdt"], f"{where}.intelRdt", dict.fromkeys(
            ("closID", "l3CacheSchema", "memBwSchema", "schemata", "enableMonitoring"), False))
        need.at_least("1.1.0" if {"schemata", "enableMonitoring"} & set(rdt) else "0.7.0",
                      "intelRdt")
        unsupported.append("intelRdt")
    if _list(w, e.get("netDevices"), f"{where}.netDevices"):
        need.at_least("1.1.0", "netDevices")
        unsupported.append("netDevices")
    return Edits(_env(w, e.get("env"), f"{where}.env"), nodes, mounts, hooks, gids,
                 tuple(unsupported))


def _node(w: _Where, value: Any, where: str, need: _Needs) -> DeviceNode:
    d = _object(w, value, where, {"path": True, "hostPath": False, "type": False,
                                  "major": False, "minor": False, "fileMode": False,
                                  "permissions": False, "uid": False, "gid": False})
    path = _path(w, d["path"], f"{where}.path", in_container=True)
    host_path = path
    if d.get("hostPath"):
        need.at_least("0.5.0", "hostPath of a device node")
        host_path = _path(w, d["hostPath"], f"{where}.hostPath")
    kind = _str(w, d.get("type", ""), f"{where}.type", empty=True)
    if kind and kind not in NODE_TYPES:
        raise w.fail(f"{where}.type", f"{kind!r}: crid injects only char (c, u) and block (b) "
                     "device nodes")
    permissions = _str(w, d.get("permissions", ""), f"{where}.permissions", empty=True)
    if permissions != NO_PERMISSIONS and (
            not set(permissions) <= set("rwm") or len(set(permissions)) != len(permissions)):
        raise w.fail(f"{where}.permissions", f"{permissions!r} is not a subset of 'rwm' "
                     "(or 'none')")
    optional: dict[str, Callable[[Any, str], int]] = {
        "major": lambda v, at: _int(w, v, at, 0, MAX_ID),
        "minor": lambda v, at: _int(w, v, at, 0, MAX_ID),
        "fileMode": lambda v, at: _int(w, v, at, 0, 0o777),
        "uid": lambda v, at: _int(w, v, at, 0, MAX_ID),
        "gid": lambda v, at: _int(w, v, at, 0, MAX_ID),
    }
    numbers = {k: check(d[k], f"{where}.{k}") for k, check in optional.items()
               if d.get(k) is not None}
    return DeviceNode(path, host_path, kind, numbers.get("major"), numbers.get("minor"),
                      numbers.get("fileMode"), permissions, numbers.get("uid"),
                      numbers.get("gid"))


def _mount(w: _Where, value: Any, where: str, need: _Needs) -> Mount:
    m = _object(w, value, where, {"hostPath": True, "containerPath": True, "type": False,
                                  "options": False})
    kind = _str(w, m.get("type", ""), f"{where}.type", empty=True)
    if kind:
        need.at_least("0.4.0", "the type of a mount")
    options = _strings(w, m.get("options"), f"{where}.options")
    if kind in ("", "bind", "none") or {"bind", "rbind"} & set(options):
        source = _path(w, m["hostPath"], f"{where}.hostPath")
    else:  # tmpfs, proc, ...: the source is a name, not a host path
        source = _str(w, m["hostPath"], f"{where}.hostPath")
    target = _path(w, m["containerPath"], f"{where}.containerPath", in_container=True)
    return Mount(source, target, kind, options)


def _hook(w: _Where, value: Any, where: str) -> Hook:
    h = _object(w, value, where, {"hookName": True, "path": True, "args": False,
                                  "env": False, "timeout": False})
    name = _str(w, h["hookName"], f"{where}.hookName")
    if name not in HOOK_NAMES:
        raise w.fail(f"{where}.hookName", f"{name!r} is not one of {', '.join(sorted(HOOK_NAMES))}")
    timeout = h.get("timeout")
    return Hook(name, _path(w, h["path"], f"{where}.path"),
                _strings(w, h.get("args"), f"{where}.args"), _env(w, h.get("env"), f"{where}.env"),
                None if timeout is None else _int(w, timeout, f"{where}.timeout", 1, 2**31 - 1))
