"""A structural check of a runtime-spec (1.0.x, Linux) config.json.

Mirrors the parts of the runtime-spec JSON schema and of runc's validator
that our builder could get wrong: field types and ranges, absolute paths,
known namespace kinds, capability names, seccomp actions/ops/architectures,
and runc's cross-field rules (hostname needs a UTS namespace, ambient
capabilities must be inheritable and permitted). Returns the problems found.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from crid.oci.spec.security import ALL_CAPABILITIES

NAMESPACES = {"pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"}
PROPAGATIONS = {"private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable",
                "runbindable", ""}
SECCOMP_ACTIONS = {"SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
                   "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW",
                   "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY"}
SECCOMP_OPS = {"SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE",
               "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"}
RLIMITS = {
    "RLIMIT_" + n
    for n in ("AS", "CORE", "CPU", "DATA", "FSIZE", "LOCKS", "MEMLOCK", "MSGQUEUE", "NICE",
              "NOFILE", "NPROC", "RSS", "RTPRIO", "RTTIME", "SIGPENDING", "STACK")
}
TOP_LEVEL = {"ociVersion", "process", "root", "hostname", "domainname", "mounts", "hooks",
             "annotations", "linux"}
UINT32 = range(0, 2**32)


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def expect(self, ok: bool, where: str, what: str) -> bool:
        if not ok:
            self.problems.append(f"{where}: {what}")
        return ok

    def typed(self, value: Any, kind: type | tuple[type, ...], where: str) -> bool:
        if kind is int or kind == (int,):
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, kind)
        return self.expect(ok, where, f"expected {kind}, got {value!r}")

    def strings(self, value: Any, where: str) -> bool:
        return self.typed(value, list, where) and all(
            self.typed(v, str, f"{where}[{i}]") for i, v in enumerate(value))

    def absolute(self, value: Any, where: str) -> None:
        if self.typed(value, str, where):
            self.expect(value.startswith("/"), where, f"{value!r} is not absolute")

    def string_map(self, value: Any, where: str) -> None:
        if self.typed(value, dict, where):
            for k, v in value.items():
                self.typed(k, str, f"{where} key")
                self.typed(v, str, f"{where}[{k}]")


def check(spec: Mapping[str, Any]) -> list[str]:
    c = _Checker()
    c.expect(set(spec) <= TOP_LEVEL, "config", f"unknown keys {set(spec) - TOP_LEVEL}")
    c.expect(bool(re.fullmatch(r"1\.0\.\d+(-.*)?", str(spec.get("ociVersion")))), "ociVersion",
             "not a 1.0.x version")
    root: Any = spec.get("root")
    if c.typed(root, dict, "root"):
        c.typed(root.get("path"), str, "root.path")
        c.typed(root.get("readonly", False), bool, "root.readonly")
    _process(c, spec.get("process"))
    for i, mount in enumerate(spec.get("mounts", [])):
        where = f"mounts[{i}]"
        c.absolute(mount.get("destination"), f"{where}.destination")
        c.typed(mount.get("type"), str, f"{where}.type")
        c.typed(mount.get("source"), str, f"{where}.source")
        c.strings(mount.get("options", []), f"{where}.options")
        if mount.get("type") == "bind":
            c.absolute(mount.get("source"), f"{where}.source")
    c.string_map(spec.get("annotations", {}), "annotations")
    linux: Any = spec.get("linux")
    if c.typed(linux, dict, "linux"):
        _linux(c, linux)
        kinds = {n.get("type") for n in linux.get("namespaces", [])}
        if spec.get("hostname"):
            c.typed(spec["hostname"], str, "hostname")
            c.expect("uts" in kinds, "hostname", "set without a UTS namespace")
        if any(k.startswith("net.") for k in linux.get("sysctl", {})):
            c.expect("network" in kinds, "linux.sysctl", "net.* needs a network namespace")
    return c.problems


def _process(c: _Checker, process: Any) -> None:
    if not c.typed(process, dict, "process"):
        return
    if c.strings(process.get("args"), "process.args"):
        c.expect(len(process["args"]) > 0, "process.args", "empty")
    c.absolute(process.get("cwd"), "process.cwd")
    if c.strings(process.get("env", []), "process.env"):
        for e in process.get("env", []):
            c.expect("=" in e, "process.env", f"{e!r} has no '='")
    c.typed(process.get("terminal", False), bool, "process.terminal")
    c.typed(process.get("noNewPrivileges", False), bool, "process.noNewPrivileges")
    user = process.get("user")
    if c.typed(user, dict, "process.user"):
        for key in ("uid", "gid"):
            if c.typed(user.get(key), int, f"process.user.{key}"):
                c.expect(user[key] in UINT32, f"process.user.{key}", "out of range")
        for g in user.get("additionalGids", []):
            if c.typed(g, int, "process.user.additionalGids"):
                c.expect(g in UINT32, "process.user.additionalGids", "out of range")
    caps = process.get("capabilities", {})
    if c.typed(caps, dict, "process.capabilities"):
        for name, values in caps.items():
            where = f"process.capabilities.{name}"
            c.expect(name in {"bounding", "effective", "permitted", "inheritable", "ambient"},
                     where, "unknown set")
            if c.strings(values, where):
                for v in values:
                    c.expect(v in ALL_CAPABILITIES, where, f"unknown capability {v}")
        for cap in caps.get("ambient", []):
            c.expect(cap in caps.get("inheritable", []) and cap in caps.get("permitted", []),
                     "process.capabilities.ambient", f"{cap} not inheritable and permitted")
    for i, r in enumerate(process.get("rlimits", [])):
        where = f"process.rlimits[{i}]"
        c.expect(r.get("type") in RLIMITS, where, f"unknown type {r.get('type')}")
        if c.typed(r.get("soft"), int, where) and c.typed(r.get("hard"), int, where):
            c.expect(r["soft"] <= r["hard"], where, "soft above hard")
    if "oomScoreAdj" in process and c.typed(process["oomScoreAdj"], int, "process.oomScoreAdj"):
        c.expect(-1000 <= process["oomScoreAdj"] <= 1000, "process.oomScoreAdj", "out of range")


def _linux(c: _Checker, linux: dict[str, Any]) -> None:
    seen = set()
    for i, ns in enumerate(linux.get("namespaces", [])):
        where = f"linux.namespaces[{i}]"
        kind = ns.get("type")
        c.expect(kind in NAMESPACES, where, f"unknown type {kind}")
        c.expect(kind not in seen, where, f"duplicate {kind}")
        seen.add(kind)
        if "path" in ns:
            c.absolute(ns["path"], f"{where}.path")
    if "cgroupsPath" in linux:
        c.absolute(linux["cgroupsPath"], "linux.cgroupsPath")
    for key in ("maskedPaths", "readonlyPaths"):
        for p in linux.get(key, []):
            c.absolute(p, f"linux.{key}")
    c.expect(linux.get("rootfsPropagation", "") in PROPAGATIONS, "linux.rootfsPropagation",
             "unknown")
    c.string_map(linux.get("sysctl", {}), "linux.sysctl")
    for i, d in enumerate(linux.get("devices", [])):
        where = f"linux.devices[{i}]"
        c.absolute(d.get("path"), f"{where}.path")
        c.expect(d.get("type") in {"c", "b", "u", "p"}, where, f"type {d.get('type')}")
        for key in ("major", "minor", "fileMode", "uid", "gid"):
            if key in d:
                c.typed(d[key], int, f"{where}.{key}")
    _resources(c, linux.get("resources", {}))
    if "seccomp" in linux:
        _seccomp(c, linux["seccomp"])


def _resources(c: _Checker, res: dict[str, Any]) -> None:
    for i, rule in enumerate(res.get("devices", [])):
        where = f"linux.resources.devices[{i}]"
        c.typed(rule.get("allow"), bool, f"{where}.allow")
        c.expect(rule.get("type", "a") in {"a", "c", "b"}, where, "type")
        access = rule.get("access", "")
        c.expect(set(access) <= set("rwm"), where, f"access {access!r}")
        for key in ("major", "minor"):
            if key in rule:
                c.typed(rule[key], int, f"{where}.{key}")
    cpu = res.get("cpu", {})
    for key in ("shares", "quota", "period"):
        if key in cpu:
            c.typed(cpu[key], int, f"linux.resources.cpu.{key}")
    for key in ("cpus", "mems"):
        if key in cpu:
            c.typed(cpu[key], str, f"linux.resources.cpu.{key}")
    for key, value in res.get("memory", {}).items():
        c.expect(key in {"limit", "reservation", "swap", "kernel", "kernelTCP", "swappiness",
                         "disableOOMKiller", "useHierarchy"}, "linux.resources.memory", key)
        if key in {"limit", "swap", "reservation"}:
            c.typed(value, int, f"linux.resources.memory.{key}")
    for h in res.get("hugepageLimits", []):
        c.typed(h.get("pageSize"), str, "linux.resources.hugepageLimits.pageSize")
        c.typed(h.get("limit"), int, "linux.resources.hugepageLimits.limit")
    c.string_map(res.get("unified", {}), "linux.resources.unified")


def _seccomp(c: _Checker, seccomp: dict[str, Any]) -> None:
    c.expect(seccomp.get("defaultAction") in SECCOMP_ACTIONS, "linux.seccomp.defaultAction",
             str(seccomp.get("defaultAction")))
    if "defaultErrnoRet" in seccomp:
        c.typed(seccomp["defaultErrnoRet"], int, "linux.seccomp.defaultErrnoRet")
    for arch in seccomp.get("architectures", []):
        c.expect(bool(re.fullmatch(r"SCMP_ARCH_[A-Z0-9_]+", arch)), "linux.seccomp", arch)
    for i, rule in enumerate(seccomp.get("syscalls", [])):
        where = f"linux.seccomp.syscalls[{i}]"
        if c.strings(rule.get("names"), f"{where}.names"):
            c.expect(len(rule["names"]) > 0, where, "no names")
        c.expect(rule.get("action") in SECCOMP_ACTIONS, where, f"action {rule.get('action')}")
        for arg in rule.get("args", []) or []:
            c.expect(arg.get("index") in range(6), where, f"arg index {arg.get('index')}")
            c.expect(arg.get("op") in SECCOMP_OPS, where, f"op {arg.get('op')}")
            c.typed(arg.get("value"), int, f"{where}.args.value")
