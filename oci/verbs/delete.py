"""``delete ID [--force]``: remove a stopped (or created) container's cgroup and
state dir, killing it first when forced; run poststop hooks.

:func:`delete_container` is the verb as a library call, for the CLI and the
daemon (in-process) alike. Only ``run``, whose process is the container's
subreaper, reaps what it kills (``reap``): anywhere else a ``waitpid(-1)``
would take exit statuses that belong to others (the daemon's children)."""

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
    delete_container(ctx, a.one_id("delete"), bool(a.flags.get("force")))
    return 0


def delete_container(ctx: Context, cid: str, force: bool) -> None:
    """The verb: :func:`delete`, and the dir an aborted create left (no state
    file in it); an unknown container is fine when forced."""
    try:
        delete(ctx, cid, force)
    except NotFound:
        d = state.container_dir(ctx.root, cid)
        if os.path.isdir(d):  # an aborted create: the dir without a state file
            _remove_dir(d)
        if force:
            return
        raise


def delete(ctx: Context, cid: str, force: bool, *, reap: bool = False) -> None:
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
        kill_all(st, reap=reap)
    tree.remove(paths)
    _remove_dir(state.container_dir(ctx.root, cid))
    if (cfg.get("hooks") or {}).get("poststop"):
        hooks.run(cfg, "poststop", {**state.oci_state(ctx.root, st), "status": "stopped"},
                  deadline=ctx.deadline, warn=ctx.warn)


def _own_pid_namespace(cfg: Spec) -> bool:
    spaces = (cfg.get("linux") or {}).get("namespaces") or []
    return any(n.get("type") == "pid" and not n.get("path") for n in spaces)


def kill_all(st: ContainerState, timeout: float = 10.0, *, reap: bool = False) -> None:
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
        if reap:
            try:
                os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pass
        time.sleep(0.002)


def _remove_dir(d: str) -> None:
    for name in os.listdir(d):
        os.unlink(os.path.join(d, name))
    os.rmdir(d)
