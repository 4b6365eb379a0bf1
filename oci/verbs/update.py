"""``update ID --resources FILE | flags``: change a container's cgroup limits,
and its device rules when ``--resources`` holds a ``devices`` list.

:func:`update` is the verb as a library call (the CLI reads the resources
from the file or flags; the daemon hands them over in-process)."""

from __future__ import annotations

import json
import sys

from crid.oci import cgroups, state
from crid.oci.context import Context, parse
from crid.oci.errors import InvalidArgument, not_running

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from typing import Any, Literal

    from crid.oci.runtime_spec import CPU, ContainerState, Memory, Resources

FLAGS = {
    "--resources": "resources:str", "-r": "resources:str",
    "--memory": "memory:str", "--memory-reservation": "memory_reservation:str",
    "--memory-swap": "memory_swap:str", "--kernel-memory": "kernel_memory:str",
    "--cpu-shares": "cpu_shares:int", "--cpu-quota": "cpu_quota:int",
    "--cpu-period": "cpu_period:int", "--cpu-rt-period": "cpu_rt_period:int",
    "--cpu-rt-runtime": "cpu_rt_runtime:int", "--cpuset-cpus": "cpuset_cpus:str",
    "--cpuset-mems": "cpuset_mems:str", "--pids-limit": "pids_limit:int",
    "--blkio-weight": "blkio_weight:int", "--l3-cache-schema": "l3:str",
    "--mem-bw-schema": "mb:str",
}
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def size(raw: str) -> int:
    s = raw.strip().lower().removesuffix("b") if raw.strip().lower() not in ("-1",) else "-1"
    if s == "-1":
        return -1
    unit = s[-1] if s and s[-1] in _UNITS else ""
    try:
        return int(float(s[: len(s) - len(unit)]) * _UNITS[unit])
    except ValueError:
        raise InvalidArgument(f"invalid size {raw!r}") from None


# (runtime-spec key, flag) for the memory and cpu objects
_MEMORY_FLAGS: tuple[tuple[Literal["limit", "reservation", "swap"], str], ...] = (
    ("limit", "memory"), ("reservation", "memory_reservation"), ("swap", "memory_swap"))
_CPU_FLAGS: tuple[tuple[Literal["shares", "quota", "period", "realtimePeriod", "realtimeRuntime",
                                "cpus", "mems"], str], ...] = (
    ("shares", "cpu_shares"), ("quota", "cpu_quota"), ("period", "cpu_period"),
    ("realtimePeriod", "cpu_rt_period"), ("realtimeRuntime", "cpu_rt_runtime"),
    ("cpus", "cpuset_cpus"), ("mems", "cpuset_mems"))


def from_flags(f: dict[str, Any]) -> Resources:
    res: Resources = {}
    mem: Memory = {}
    for key, name in _MEMORY_FLAGS:
        if f.get(name):
            mem[key] = size(f[name])
    cpu: CPU = {}
    for cpu_key, name in _CPU_FLAGS:
        if f.get(name) is not None:
            cpu[cpu_key] = f[name]
    if mem:
        res["memory"] = mem
    if cpu:
        res["cpu"] = cpu
    if f.get("pids_limit") is not None:
        res["pids"] = {"limit": f["pids_limit"]}
    if f.get("blkio_weight"):
        res["blockIO"] = {"weight": f["blkio_weight"]}
    return res


def main(ctx: Context, argv: list[str]) -> int:
    a = parse(argv, FLAGS)
    st = _running(ctx, a.one_id("update"))  # refused before the file is read
    src = a.flags.get("resources")
    if src:
        try:
            with (sys.stdin if src == "-" else open(src)) as f:
                res: Resources = json.load(f)
        except ValueError as e:
            raise InvalidArgument(f"--resources: invalid JSON: {e}") from None
        if not isinstance(res, dict):
            raise InvalidArgument("--resources must hold a JSON object (linux.resources)")
    else:
        res = from_flags(a.flags)
    _apply(ctx, st, res)
    return 0


def update(ctx: Context, cid: str, res: Resources) -> None:
    """Apply ``res`` (runtime-spec ``linux.resources``) and keep it in the state."""
    _apply(ctx, _running(ctx, cid), res)


def _running(ctx: Context, cid: str) -> ContainerState:
    st = state.load(ctx.root, cid)
    if state.status(ctx.root, st) == "stopped":
        raise not_running()
    return st


def _apply(ctx: Context, st: ContainerState, res: Resources) -> None:
    cfg = st.setdefault("config", {})
    applied = res
    if res.get("devices") is not None:
        # A new device list replaces the old one whole: deny all, these rules,
        # the container's own nodes, the defaults (on cgroup2 a new program
        # takes the old one's place).
        if not isinstance(res["devices"], list):
            raise InvalidArgument("--resources: devices must be a list of rules")
        applied = res.copy()
        applied["devices"] = cgroups.with_device_nodes(res["devices"], cfg.get("linux") or {})
        from crid.oci.cgroups import devices

        devices.effective(applied["devices"])  # refuse a bad list before writing anything
    cgroups.apply(st.get("cgroup") or {}, applied, on_create=False)
    _merge(cfg.setdefault("linux", {}).setdefault("resources", {}), res)
    state.save(ctx.root, st["id"], st)


def _merge(merged: Any, res: Resources) -> None:
    """``res`` into the state's ``linux.resources``: an object merged one level
    deep, anything else replaced. Key by key, whatever keys the request has,
    so ``merged`` is handled as the plain JSON object it is on disk."""
    for k, v in res.items():
        merged[k] = {**merged.get(k, {}), **v} if isinstance(v, dict) else v
