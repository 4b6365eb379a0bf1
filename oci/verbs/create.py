"""``create``: check the bundle, make the state dir, cgroup and exec fifo, then
fork the container's init and wait until it is blocked on the fifo.

Process tree: the runtime forks a first child, which joins the cgroup and the
namespaces (unsharing a user namespace first, while the runtime writes its id
maps), unshares the rest, and forks init (PID 1 of a new pid namespace) before
exiting, so init is reparented to the caller's subreaper (conmon) or to us in
``run``. Any failure undoes everything made so far: no state dir, cgroup or
mount is left (mounts live in init's mount namespace and die with it).

A runtime killed part-way must not leave its children waiting: the first
child dies with it (parent death signal), and init, once ready, waits for
the runtime's last word (state saved, pid file written) before it blocks on
the exec fifo, so a runtime killed before then takes init with it.
"""

from __future__ import annotations

import os
import sys
import time

from crid.oci import cgroups, config, hooks, mounts, paths, process, procfs, signals, state
from crid.oci import linux as L
from crid.oci import namespaces as ns
from crid.oci.cgroups import tree
from crid.oci.context import Context, abspath, parse
from crid.oci.errors import CridError, InvalidArgument, describe
from crid.oci.init import Init
from crid.oci.rootfs import check_proc_mount
from crid.oci.sync import Channel

from crid.errors import AlreadyExists

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from crid.oci.runtime_spec import ContainerState, Linux, Resources, Spec, State

    from crid.jsontypes import Json


FLAGS = {
    "--bundle": "bundle:str", "-b": "bundle:str",
    "--pid-file": "pid_file:str",
    "--console-socket": "console_socket:str",
    "--no-pivot": "no_pivot:bool",
    "--no-new-keyring": "no_new_keyring:bool",
    "--preserve-fds": "preserve_fds:int",
}


def main(ctx: Context, argv: list[str]) -> int:
    a = parse(argv, FLAGS)
    create(ctx, a.one_id("create"), a.flags)
    return 0


def create(ctx: Context, cid: str, flags: Json) -> ContainerState:
    state.check_id(cid)
    ctx.step("create: imports done")
    bundle, cfg, rootfs = config.load_bundle(flags.get("bundle") or ".")
    proc = cfg["process"]
    process.check_unsupported(proc)
    sock = abspath(flags.get("console_socket"))
    if proc.get("terminal") and not sock:
        raise InvalidArgument("cannot allocate tty if runc will detach without setting console "
                              "socket")
    if sock and not proc.get("terminal"):
        raise InvalidArgument("cannot use console socket if runc will not detach or allocate tty")
    if not config.has_new_ns(cfg, "mount"):
        raise InvalidArgument("config.json: a new mount namespace is required")
    _check_proc_mounts(cfg, bundle)
    os.makedirs(ctx.root, state.ROOT_MODE, exist_ok=True)
    d = state.container_dir(ctx.root, cid)
    try:
        os.mkdir(d, 0o711)
    except FileExistsError:
        raise AlreadyExists(f"container with id exists: {cid}") from None
    undo: list[Callable[[], None]] = [lambda: _remove_dir(d)]
    try:
        return _create(ctx, cid, flags, bundle, cfg, rootfs, d, sock, undo)
    except BaseException:
        for step in reversed(undo):
            try:
                step()
            except Exception as e:  # keep undoing; report the first failure only
                ctx.log_line("warning", f"cleanup: {describe(e)}")
        raise


def _create(ctx: Context, cid: str, flags: Json, bundle: str, cfg: Spec, rootfs: str,
            d: str, sock: str | None, undo: list[Callable[[], None]]) -> ContainerState:
    linux: Linux = cfg.get("linux") or {}
    cg = cgroups.resolve(linux.get("cgroupsPath"), cid)
    # A new cgroup namespace is unshared from inside the cgroup, so then the
    # first child joins before it unshares. Otherwise we make the cgroup while
    # the children set up namespaces and mounts, and move init in ourselves:
    # making and joining a cgroup waits for the kernel (prime_attach), and
    # this way the container's own set-up runs during that wait.
    join_early = config.has_new_ns(cfg, "cgroup")
    if join_early:
        _make_cgroup(ctx, cg, linux, undo)
    fifo = os.path.join(d, state.FIFO)
    os.mkfifo(fifo, 0o622)
    os.chmod(fifo, 0o622)
    opts: Json = {"id": cid, "bundle": bundle, "rootfs": rootfs, "fifo": fifo,
                  "console_socket": sock, "no_pivot": flags.get("no_pivot"),
                  "preserve_fds": flags.get("preserve_fds") or 0, "cgroup": cg,
                  "join_cgroup": join_early, "release_signals": flags.get("release_signals")}
    ch = Channel.open()
    parent = os.getpid()
    first = os.fork()
    if first == 0:
        _first_child(ch, cfg, opts, parent)
    ch.parent_side()
    watch = _pidfd(first)
    pid = 0

    def kill_init() -> None:
        if pid:
            _kill_and_wait(pid)

    def receive() -> Json | None:
        # The first child is watched until it reports init's pid: killed after
        # forking init, it would leave init (holding the pipe) and us waiting
        # on each other.
        return ch.from_child(watch if first else None)

    undo.append(kill_init)
    try:
        if not join_early:
            _make_cgroup(ctx, cg, linux, undo)
        for msg in in_order(receive):
            if msg is None:
                raise CridError("container init (or the runtime's child that forks it) "
                                "exited before it was ready")
            if "error" in msg:
                raise CridError(msg["error"])
            if "userns" in msg:
                ns.write_id_maps(L.syscalls(), int(msg["userns"]), linux)
                ch.to_child({"ok": True})
            elif "pid" in msg:
                pid = int(msg["pid"])
                ctx.step(f"init forked, pid {pid}")
                os.waitpid(first, 0)
                first = 0
                if not join_early:  # before anything else init asks for: hooks see it there
                    cgroups.join(cg, pid)
                    ch.to_child({"cgroup": True})
                    ctx.step("init joined its cgroup")
            elif "hooks" in msg:
                hook_state = _hook_state(cfg, cid, bundle, pid, "created")
                hooks.run(cfg, "prestart", hook_state)
                hooks.run(cfg, "createRuntime", hook_state)
                ch.to_child({"ok": True})
            elif msg.get("ready"):
                ctx.step("init ready")
                break
    except BaseException:
        # This also stops a child we have no pid for yet: init exits when its
        # next message to us finds the pipe closed.
        ch.close_parent()
        raise
    finally:
        if watch is not None:
            os.close(watch)
        if first:
            os.waitpid(first, 0)
    _oom_score_adj(ctx, pid, cfg["process"].get("oomScoreAdj"))
    st: ContainerState = {
        "id": cid, "pid": pid, "pid_start": state.proc_start_time(pid), "bundle": bundle,
        "rootfs": rootfs, "ociVersion": cfg["ociVersion"],  # there: load_bundle checked it
        "created": _rfc3339_now(),
        "annotations": cfg.get("annotations") or {}, "cgroup": cg, "config": cfg,
    }
    state.save(ctx.root, cid, st)
    ctx.step("state saved")
    if flags.get("pid_file"):
        state.write_pid_file(flags["pid_file"], pid)
    # Init waits for this before it waits for `start`: had we died before
    # here, it would sit on the exec fifo holding our caller's stdio (conmon
    # reads our error from that stderr, and would wait for ever). A failure
    # above kills init before this pipe closes.
    try:
        ch.to_child({"created": True})
    except BrokenPipeError:
        raise CridError("container init exited before the create finished") from None
    ch.close_parent()
    return st


def in_order(receive: Callable[[], Json | None]) -> Iterator[Json | None]:
    """The first child's and init's messages, init's held back until the first
    child has told us init's pid.

    Both write to the one pipe. Under a new cgroup namespace init waits for
    nothing from us before it asks for its hooks, so under load it can get
    there before the first child reports the pid it forked: taken as they
    came, the hooks would see pid 0 and create would save a state with pid 0.
    """
    held: list[Json] = []
    pid_known = False
    while True:
        if pid_known and held:
            yield held.pop(0)
            continue
        msg = receive()
        if msg is not None and not pid_known:
            if "pid" in msg:
                pid_known = True
            elif "hooks" in msg or msg.get("ready"):
                held.append(msg)
                continue
        yield msg


def _make_cgroup(ctx: Context, cg: dict[str, str], linux: Linux,
                 undo: list[Callable[[], None]]) -> None:
    given: Resources = linux.get("resources") or {}
    resources = given.copy()
    resources["devices"] = cgroups.with_device_nodes(resources.get("devices"), linux)
    # Loaded before the dirs are made: mkdir waits for the kernel (see
    # attach_prime), and this work fits in that wait.
    prog = cgroups.load_device_program(cg, resources["devices"])
    try:
        made = tree.make(cg)
    except BaseException:
        if prog is not None:
            os.close(prog)
        raise
    # Removed after init is killed (a cgroup with a process in it is busy),
    # before the state dir: undo runs last to first.
    undo.insert(1, lambda: _rmdirs(made))
    cgroups.apply(cg, resources, on_create=True, device_program=prog)
    ctx.step("cgroup ready")


def _check_proc_mounts(cfg: Spec, bundle: str) -> None:
    """Refuse the bundle before anything is made if a mount is spelled to go on
    /proc or below it against runc's rule; init checks again where each
    target really resolves (``crid.oci.rootfs.check_proc_mount``)."""
    for m in cfg.get("mounts") or []:
        kind = m.get("type") or ""
        bind = kind == "bind" or mounts.parse(list(m.get("options") or [])).is_bind
        try:
            check_proc_mount(paths.relative(m["destination"]), kind, bind,
                             os.path.join(bundle, m.get("source") or ""))
        except InvalidArgument as e:
            raise InvalidArgument(f"config.json: {e.message}") from None


def _rfc3339_now() -> str:
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except OSError:  # a kernel before 5.3: not watched
        return None


def _die_with(sc: L.Syscalls, parent: int) -> None:
    """SIGKILL us if the runtime dies (it may have already)."""
    sc.prctl(L.PR_SET_PDEATHSIG, signals.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _first_child(ch: Channel, cfg: Spec, opts: Json, parent: int) -> None:
    try:
        ch.child_side()
        if opts.get("release_signals"):
            signals.release()
        sc = L.syscalls()
        # Killed with the runtime: what would we be setting up for?
        _die_with(sc, parent)
        # Out of the container's reach until execve makes the user's program
        # dumpable again: without this a process exec'd into a created
        # container reads our fds through /proc/1/fd (the exec fifo in the
        # runtime's state dir) and /proc/1/exe (the host's Python).
        sc.prctl(L.PR_SET_DUMPABLE, 0)
        _preload(cfg)
        # Opened here, as host root: a new user namespace may not reach --root.
        opts["fifo_fd"] = os.open(opts["fifo"], os.O_PATH | os.O_CLOEXEC)
        if opts["join_cgroup"]:
            cgroups.join(opts["cgroup"], os.getpid())
        if any(m.get("uidMappings") or m.get("gidMappings") for m in cfg.get("mounts") or []):
            from crid.oci import idmap

            idmap.prepare(sc, cfg, opts["bundle"])  # as host root, before any join
        nss = config.namespaces(cfg)
        ns.join(sc, ns.open_paths(nss))
        new_userns = config.has_new_ns(cfg, "user")
        if new_userns:
            sc.unshare(L.CLONE_NEWUSER)
            ch.to_parent({"userns": os.getpid()})
            if ch.from_parent() is None:
                os._exit(1)
        if new_userns or any(n["type"] == "user" for n in nss):
            # Host root is no id in a user namespace (it shows as the overflow
            # id, and files it would make there fail with EOVERFLOW): become
            # its root, mapped to the container's first host id.
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
            sc.prctl(L.PR_SET_DUMPABLE, 0)  # a change of ids resets it to fs.suid_dumpable
            _die_with(sc, parent)  # and clears the parent death signal
        flags = ns.new_flags(nss, exclude=("user",))
        if flags:
            sc.unshare(flags)
        pid = os.fork()
        if pid == 0:
            _init(ch, cfg, opts)
        ch.to_parent({"pid": pid})
        os._exit(0)
    except BaseException as e:
        _report(ch, e)
        os._exit(1)


def _preload(cfg: Spec) -> None:
    """Import what init needs while the host's Python is still reachable (a new
    user namespace can lose access to it, and pivot_root always does)."""
    proc = cfg["process"]
    if proc.get("terminal"):
        from crid.oci import console  # noqa: F401
    if (cfg.get("linux") or {}).get("seccomp"):
        from crid.oci import seccomp  # noqa: F401
    if cfg.get("hooks"):
        import subprocess  # noqa: F401


def _init(ch: Channel, cfg: Spec, opts: Json) -> None:
    try:
        if config.has_new_ns(cfg, "network"):
            L.syscalls().loopback_up()
        Init(ch, cfg, opts).run()
    except BaseException as e:
        _report(ch, e)
    os._exit(1)


def _report(ch: Channel, e: BaseException) -> None:
    try:
        ch.to_parent({"error": describe(e)})
    except OSError:
        sys.stderr.write(f"crid-runtime: {describe(e)}\n")


def _hook_state(cfg: Spec, cid: str, bundle: str, pid: int, status: str) -> State:
    # ociVersion is there: load_bundle checked it.
    return {"ociVersion": cfg["ociVersion"], "id": cid, "status": status, "pid": pid,
            "bundle": bundle, "annotations": cfg.get("annotations") or {}}


def _oom_score_adj(ctx: Context, pid: int, adj: int | None) -> None:
    if adj is None:
        return
    sc = L.syscalls()
    proc = procfs.open_root(sc)  # the host's, proved a procfs; nothing below it followed
    try:
        try:
            procfs.write(sc, proc, f"{pid}/oom_score_adj", str(adj))
        except OSError as e:
            cur = procfs.read(sc, proc, f"{pid}/oom_score_adj").strip()
            ctx.warn(f"oom_score_adj {adj} refused by the kernel ({e.strerror}); keeping {cur}")
    finally:
        os.close(proc)


def _kill_and_wait(pid: int, timeout: float = 5.0) -> None:
    start = state.proc_start_time(pid)
    if start is None:
        return
    try:
        os.kill(pid, signals.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while state.proc_start_time(pid) == start and time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
        except ChildProcessError:
            pass
        time.sleep(0.002)


def _rmdirs(dirs: list[str]) -> None:
    for d in reversed(dirs):
        tree.remove({"": d})


def _remove_dir(d: str) -> None:
    for name in os.listdir(d):
        os.unlink(os.path.join(d, name))
    os.rmdir(d)
