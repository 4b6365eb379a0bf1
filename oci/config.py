"""Loading and checking a bundle's config.json before anything is created.

Every problem becomes one ``InvalidArgument`` line naming the field, raised
before the state dir, cgroup or any mount exists, so a bad bundle leaves
nothing behind.
"""

from __future__ import annotations

import os

from crid.oci import jsonc
from crid.oci.errors import InvalidArgument

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from typing import Any

    from crid.oci.runtime_spec import Namespace, Spec

    from crid.jsontypes import Json


NAMESPACES = ("pid", "network", "ipc", "uts", "mount", "user", "cgroup", "time")


def _type(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    # bool is an int in Python; JSON true is not a number in the spec.
    if isinstance(value, bool) and kind in (int, (int,)):
        raise InvalidArgument(f"config.json: {where} must be a number, got {value!r}")
    if not isinstance(value, kind):
        names = {dict: "an object", list: "an array", str: "a string", int: "a number",
                 bool: "a boolean"}
        want = names.get(kind, str(kind)) if isinstance(kind, type) else "a value"
        raise InvalidArgument(f"config.json: {where} must be {want}, got {value!r}")
    return value


def _opt(obj: Json, key: str, kind: type, where: str) -> Any:
    if key not in obj or obj[key] is None:
        return None
    return _type(obj[key], kind, f"{where}.{key}" if where else key)


def _abs(path: Any, where: str) -> str:
    _type(path, str, where)
    if not os.path.isabs(path):
        raise InvalidArgument(f"config.json: {where} must be an absolute path, got {path!r}")
    return str(path)


def load_bundle(bundle: str) -> tuple[str, Spec, str]:
    """(absolute bundle dir, parsed config, absolute rootfs path)."""
    bundle = os.path.abspath(bundle)
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise InvalidArgument(f"{path}: config.json not found in bundle") from None
    except OSError as e:
        raise InvalidArgument(f"{path}: cannot read config.json: {e.strerror}") from None
    try:
        cfg = jsonc.loads(raw)
    except ValueError as e:
        raise InvalidArgument(f"{path}: config.json is not valid JSON: {e}") from None
    _type(cfg, dict, "top level")
    validate(cfg)
    rootfs = cfg["root"]["path"]
    if not os.path.isabs(rootfs):
        rootfs = os.path.join(bundle, rootfs)
    if not os.path.isdir(rootfs):
        raise InvalidArgument(f"config.json: root.path {rootfs!r} does not exist or is not a dir")
    return bundle, cfg, rootfs


def _process(p: Json, where: str, need_args: bool = True) -> None:
    args = _opt(p, "args", list, where)
    if need_args and not args:
        raise InvalidArgument(f"config.json: {where}.args must not be empty")
    for i, a in enumerate(args or []):
        _type(a, str, f"{where}.args[{i}]")
    if p.get("cwd") is not None:
        _abs(p["cwd"], f"{where}.cwd")
    for i, e in enumerate(_opt(p, "env", list, where) or []):
        _type(e, str, f"{where}.env[{i}]")
    _opt(p, "terminal", bool, where)
    _opt(p, "noNewPrivileges", bool, where)
    _opt(p, "oomScoreAdj", int, where)
    user = _opt(p, "user", dict, where) or {}
    for k in ("uid", "gid", "umask"):
        _opt(user, k, int, f"{where}.user")
    for i, g in enumerate(_opt(user, "additionalGids", list, f"{where}.user") or []):
        _type(g, int, f"{where}.user.additionalGids[{i}]")
    caps = _opt(p, "capabilities", dict, where) or {}
    for k, v in caps.items():
        for c in _type(v, list, f"{where}.capabilities.{k}"):
            _type(c, str, f"{where}.capabilities.{k}[]")
    for i, r in enumerate(_opt(p, "rlimits", list, where) or []):
        _type(r, dict, f"{where}.rlimits[{i}]")
        _type(r.get("type"), str, f"{where}.rlimits[{i}].type")
        _type(r.get("hard"), int, f"{where}.rlimits[{i}].hard")
        _type(r.get("soft"), int, f"{where}.rlimits[{i}].soft")
    cs = _opt(p, "consoleSize", dict, where)
    if cs:
        _opt(cs, "height", int, f"{where}.consoleSize")
        _opt(cs, "width", int, f"{where}.consoleSize")


def validate_process(p: Any) -> None:
    _process(_type(p, dict, "process"), "process")


def validate(cfg: Json) -> None:
    ver = cfg.get("ociVersion")
    if ver is None:
        raise InvalidArgument("config.json: ociVersion is missing")
    _type(ver, str, "ociVersion")
    root = cfg.get("root")
    if root is None:
        raise InvalidArgument("config.json: root is missing")
    _type(root, dict, "root")
    _type(root.get("path"), str, "root.path")
    _opt(root, "readonly", bool, "root")
    if cfg.get("process") is None:
        raise InvalidArgument("config.json: process is missing")
    _process(_type(cfg["process"], dict, "process"), "process")
    _opt(cfg, "hostname", str, "")
    _opt(cfg, "domainname", str, "")
    for i, m in enumerate(_opt(cfg, "mounts", list, "") or []):
        _type(m, dict, f"mounts[{i}]")
        _abs(m.get("destination"), f"mounts[{i}].destination")
        _opt(m, "type", str, f"mounts[{i}]")
        _opt(m, "source", str, f"mounts[{i}]")
        for o in _opt(m, "options", list, f"mounts[{i}]") or []:
            _type(o, str, f"mounts[{i}].options[]")
    hooks = _opt(cfg, "hooks", dict, "") or {}
    for kind, hs in hooks.items():
        for i, h in enumerate(_type(hs, list, f"hooks.{kind}")):
            _type(h, dict, f"hooks.{kind}[{i}]")
            _abs(h.get("path"), f"hooks.{kind}[{i}].path")
            _opt(h, "timeout", int, f"hooks.{kind}[{i}]")
    linux = _opt(cfg, "linux", dict, "") or {}
    seen: set[str] = set()
    for i, ns in enumerate(_opt(linux, "namespaces", list, "linux") or []):
        _type(ns, dict, f"linux.namespaces[{i}]")
        t = ns.get("type")
        if t not in NAMESPACES:
            raise InvalidArgument(f"config.json: linux.namespaces[{i}]: unknown namespace {t!r}")
        if t in seen:
            raise InvalidArgument(f"config.json: linux.namespaces: duplicate namespace {t!r}")
        seen.add(t)
        if ns.get("path"):
            _abs(ns["path"], f"linux.namespaces[{i}].path")
    if cfg.get("hostname") and "uts" not in seen:
        raise InvalidArgument("config.json: hostname requires a new uts namespace")
    for key in ("uidMappings", "gidMappings"):
        for i, m in enumerate(_opt(linux, key, list, "linux") or []):
            for f in ("containerID", "hostID", "size"):
                _type(_type(m, dict, f"linux.{key}[{i}]").get(f), int, f"linux.{key}[{i}].{f}")
    if linux.get("uidMappings") and "user" not in seen:
        raise InvalidArgument("config.json: uidMappings require a user namespace")
    for i, d in enumerate(_opt(linux, "devices", list, "linux") or []):
        _abs(_type(d, dict, f"linux.devices[{i}]").get("path"), f"linux.devices[{i}].path")
        if d.get("type") not in ("c", "b", "u", "p"):
            raise InvalidArgument(f"config.json: linux.devices[{i}].type must be c, b, u or p")
    for key in ("maskedPaths", "readonlyPaths"):
        for i, p in enumerate(_opt(linux, key, list, "linux") or []):
            _abs(p, f"linux.{key}[{i}]")
    for k, v in (_opt(linux, "sysctl", dict, "linux") or {}).items():
        _type(v, str, f"linux.sysctl[{k}]")
    cgp = _opt(linux, "cgroupsPath", str, "linux")
    if cgp and ".." in cgp.split("/"):
        raise InvalidArgument("config.json: linux.cgroupsPath must not contain '..'")
    _opt(linux, "resources", dict, "linux")
    sec = _opt(linux, "seccomp", dict, "linux")
    if sec:
        _type(sec.get("defaultAction"), str, "linux.seccomp.defaultAction")
        for i, s in enumerate(_opt(sec, "syscalls", list, "linux.seccomp") or []):
            _type(s, dict, f"linux.seccomp.syscalls[{i}]")
            _type(s.get("names"), list, f"linux.seccomp.syscalls[{i}].names")
            _type(s.get("action"), str, f"linux.seccomp.syscalls[{i}].action")
    prop = linux.get("rootfsPropagation")
    if prop is not None and prop not in (
        "private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable"
    ):
        raise InvalidArgument(f"config.json: linux.rootfsPropagation: unknown value {prop!r}")


def namespaces(cfg: Spec) -> list[Namespace]:
    return list((cfg.get("linux") or {}).get("namespaces") or [])


def has_new_ns(cfg: Spec, kind: str) -> bool:
    return any(ns.get("type") == kind and not ns.get("path") for ns in namespaces(cfg))
