"""``delete ID [--force]``: remove a stopped (or created) container's cgroup and
state dir, killing it first when forced; run poststop hooks."""

from __future__ import annotations

import os
import time

from crid.oci import cgroups, hooks, signals, state
from crid.oci.cgroups import tree
from crid.oci.context import Context, parse
from crid.oci.errors import FailedPrecondition, NotFound

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from crid.oci.runtime_spec import ContainerState, Spec


def main(ctx: Context, argv: list[str]) -> int:
    a = parse(argv, {"--force": "force:bool", "-f": "force:bool"})
    cid = a.one_id("delete")
    try:
        delete(ctx, cid, bool(a.flags.get("force")))
    except NotFound:
        d = state.container_dir(ctx.root, cid)
        if os.path.isdir(d):  # an aborted create: the dir without a state file
            _remove_dir(d)
        if a.flags.get("force"):
            return 0
        raise
    return 0


def delete(ctx: Context, cid: str, force: bool) -> None:
    st = state.load(ctx.root, cid)
    s = state.status(ctx.root, st)
    if s not in ("stopped", "created") and not force:
        raise FailedPrecondition(f"cannot delete container {cid} that is not stopped: {s}")
    paths: dict[str, str] = st.get("cgroup") or {}
    cfg: Spec = st.get("config") or {}
    # When init exits the kernel ends the rest of its PID namespace, but not
    # of a shared one (the pod's, the host's): what the container started
    # there lives on in its cgroup, which then cannot be removed. runc's
    # delete kills those too.
    if s != "stopped" or not _own_pid_namespace(cfg):
        kill_all(st)
    tree.remove(paths)
    _remove_dir(state.container_dir(ctx.root, cid))
    if (cfg.get("hooks") or {}).get("poststop"):
        hooks.run(cfg, "poststop", {**state.oci_state(ctx.root, st), "status": "stopped"})


def _own_pid_namespace(cfg: Spec) -> bool:
    spaces = (cfg.get("linux") or {}).get("namespaces") or []
    return any(n.get("type") == "pid" and not n.get("path") for n in spaces)


def kill_all(st: ContainerState, timeout: float = 10.0) -> None:
    paths: dict[str, str] = st.get("cgroup") or {}
    frozen = cgroups.is_frozen(paths)
    victims = set(cgroups.pids(paths))
    if state.is_alive(st):
        victims.add(int(st["pid"]))
    for pid in victims:
        try:
            os.kill(pid, signals.SIGKILL)
        except ProcessLookupError:
            pass
    if frozen:
        cgroups.freeze(paths, False)
    deadline = time.monotonic() + timeout
    while (state.is_alive(st) or cgroups.pids(paths)) and time.monotonic() < deadline:
        try:
            os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.002)


def _remove_dir(d: str) -> None:
    for name in os.listdir(d):
        os.unlink(os.path.join(d, name))
    os.rmdir(d)
