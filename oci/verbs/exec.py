"""``exec``: run another process in a created or running container.

A first child joins the container's cgroup and namespaces (all opened from
its init's /proc/<pid>/ns before any is joined, or none: ``namespaces.Target``),
then forks the process, which takes the container's
root from the joined mount namespace, drops to its user and capabilities and
execs. Success is seen as EOF on a close-on-exec pipe; failure as a message.
Without ``--detach`` we are the subreaper and exit with the process's code.
"""

from __future__ import annotations

import os

from crid.oci import cgroups, config, jsonc, process, signals, state, trampoline
from crid.oci import linux as L
from crid.oci import namespaces as ns
from crid.oci.context import Context, abspath, parse
from crid.oci.errors import CridError, FailedPrecondition, InvalidArgument, describe
from crid.oci.sync import Channel

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from crid.oci.runtime_spec import ContainerState, Process, Spec

    from crid.jsontypes import Json


FLAGS = {
    "--process": "process:str", "-p": "process:str",
    "--detach": "detach:bool", "-d": "detach:bool",
    "--pid-file": "pid_file:str", "--console-socket": "console_socket:str",
    "--tty": "tty:bool", "-t": "tty:bool", "--cwd": "cwd:str",
    "--env": "env:list", "-e": "env:list", "--user": "user:str", "-u": "user:str",
    "--additional-gids": "gids:list", "-g": "gids:list", "--cap": "cap:list", "-c": "cap:list",
    "--no-new-privs": "nnp:bool", "--preserve-fds": "preserve_fds:int",
    "--process-label": "label:str", "--apparmor": "apparmor:str", "--cgroup": "cgroup:str",
    "--ignore-paused": "ignore_paused:bool",
}


def build_process(cfg: Spec, f: Json, args: list[str]) -> Process:
    if f.get("process"):
        try:
            with open(f["process"]) as fh:
                proc: Process = jsonc.loads(fh.read())
        except OSError as e:
            raise InvalidArgument(f"--process {f['process']}: {e.strerror}") from None
        except ValueError as e:
            raise InvalidArgument(f"--process {f['process']}: invalid JSON: {e}") from None
        config.validate_process(proc)
        return proc
    if not args:
        raise InvalidArgument("exec needs a command (or --process FILE)")
    base: Process = jsonc.loads(jsonc.dumps(cfg.get("process") or {}))
    base["args"] = args
    base["terminal"] = bool(f.get("tty"))
    if f.get("cwd"):
        base["cwd"] = f["cwd"]
    base["env"] = list(base.get("env") or []) + list(f.get("env") or [])
    user = base.setdefault("user", {})
    if f.get("user"):
        uid, _, gid = f["user"].partition(":")
        user["uid"], user["gid"] = int(uid), int(gid or 0)
    if f.get("gids"):
        user["additionalGids"] = [int(g) for g in f["gids"]]
    if f.get("cap"):
        caps = base.setdefault("capabilities", {})
        for k in process.CAPABILITY_SETS:
            caps[k] = list(caps.get(k) or []) + list(f["cap"])
    if f.get("nnp"):
        base["noNewPrivileges"] = True
    config.validate_process(base)
    return base


def running(root: str, cid: str, ignore_paused: bool = False) -> ContainerState:
    """The state of container ``cid``, refused unless a process may be exec'd in it."""
    st = state.load(root, cid)
    s = state.status(root, st)
    if s == "stopped":
        raise FailedPrecondition("cannot exec in a stopped container: container not running")
    if s == "paused" and not ignore_paused:
        raise FailedPrecondition("cannot exec in a paused container (use --ignore-paused)")
    return st


def main(ctx: Context, argv: list[str]) -> int:
    a = parse(argv, FLAGS, stop_after=1)
    st = running(ctx.root, a.one_id("exec"), bool(a.flags.get("ignore_paused")))
    cfg: Spec = st.get("config") or {}
    proc = build_process(cfg, a.flags, a.pos[1:])
    process.check_unsupported(proc)
    sock = abspath(a.flags.get("console_socket"))
    detach = bool(a.flags.get("detach"))
    if proc.get("terminal") and not sock and detach:
        raise InvalidArgument("cannot allocate tty if runc will detach without setting "
                              "console socket")
    if sock and not (proc.get("terminal") and detach):
        raise InvalidArgument("cannot use console socket if runc will not detach or allocate tty")
    # In the foreground with a terminal, we are the console socket's other end
    # and relay the container's pty to our own stdio, as runc does.
    relay = None
    if proc.get("terminal") and not sock:
        import socket

        relay, theirs = socket.socketpair()
    if not detach:
        L.syscalls().prctl(L.PR_SET_CHILD_SUBREAPER, 1)
        signals.hold()
    pid = launch(st, cfg, proc, sock=sock, preserve=int(a.flags.get("preserve_fds") or 0),
                 sock_fd=theirs.detach() if relay else None,
                 in_child=None if detach else signals.release)
    if a.flags.get("pid_file"):
        state.write_pid_file(a.flags["pid_file"], pid)
    if detach:
        return 0
    if relay:
        from crid.oci import console

        master = console.receive_master(relay)
        signals.forward(pid, resize_from=(0, master))
        return console.relay(master, pid, signals.wait_for)
    signals.forward(pid)
    return signals.wait_for(pid)


def launch(st: ContainerState, cfg: Spec, proc: Process, *, sock: str | None = None,
           preserve: int = 0, sock_fd: int | None = None,
           in_child: Callable[[], None] | None = None) -> int:
    """Start ``proc`` in the container of ``st`` (through a first child that
    joins it); its host pid once its execve worked. ``in_child`` runs first in
    that child, before anything is joined. Raises what the children reported.
    The caller reaps the process (as its subreaper: the first child is gone)."""
    ch = Channel.open()
    # The trampoline reports a failed execve on a pipe of its own, never on
    # the channel: for the microseconds it runs, the container can reach its
    # fds, so what comes back is read as three digits and nothing more.
    rep_r, rep_w = os.pipe()
    first = os.fork()
    if first == 0:
        try:
            if in_child is not None:
                in_child()
            os.close(rep_r)
            _first_child(ch, st, cfg, proc, sock, preserve, sock_fd, rep_w)
        finally:
            os._exit(1)  # never back into the caller's code, whatever was raised
    os.close(rep_w)
    if sock_fd is not None:
        os.close(sock_fd)
    ch.parent_side()
    pid = 0
    try:
        while True:
            msg = ch.from_child()
            if msg is None:
                break
            if "error" in msg:
                raise CridError(msg["error"])
            if "pid" in msg:
                pid = int(msg["pid"])
        failed = _exec_report(rep_r) if pid else None
    finally:
        ch.close_parent()
        os.close(rep_r)
        os.waitpid(first, 0)
    if not pid:
        raise CridError("exec failed before the process started")
    if failed is not None:
        raise CridError(f"exec failed: {failed}: {proc['args'][0]}")
    return pid


def _exec_report(fd: int) -> str | None:
    """What the trampoline said on ``fd`` (None: the program's execve worked)."""
    data = b""
    while len(data) < 16:
        chunk = os.read(fd, 16)
        if not chunk:
            break
        data += chunk
    if not data:
        return None
    if len(data) == 3 and data.isdigit():
        return os.strerror(int(data))
    return "unreadable report from the exec trampoline"


def _first_child(ch: Channel, st: ContainerState, cfg: Spec, proc: Process, sock: str | None,
                 preserve: int, sock_fd: int | None, report: int) -> None:
    try:
        ch.child_side()
        sc = L.syscalls()
        # Non-dumpable until execve: the container's processes may not reach
        # our fds or our binary (the host's Python) through /proc/<pid>.
        sc.prctl(L.PR_SET_DUMPABLE, 0)
        # Everything that imports or dlopens happens before we enter the container.
        if sock or sock_fd is not None:
            from crid.oci import console

            if sock:
                sock_fd = console.connect(sock)
        filt = None
        seccomp_cfg = (cfg.get("linux") or {}).get("seccomp")
        if seccomp_cfg:
            from crid.oci import seccomp

            filt = seccomp.Filter.build(seccomp_cfg)
        privs = process.Privileges.of(sc, proc)
        cgroups.join(st.get("cgroup") or {}, os.getpid())
        # Every namespace is opened (and checked) before any is joined; any
        # failure here ends this child before the process is forked.
        target = ns.Target.open(sc, int(st["pid"]), st.get("pid_start"),
                                config.namespaces(cfg))
        target.join(sc)
        joined_user = any(t == "user" for t, _ in target.fds)
        target.close()
        if joined_user:
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
            sc.prctl(L.PR_SET_DUMPABLE, 0)  # a change of ids resets it to fs.suid_dumpable
        pid = os.fork()
        if pid == 0:
            try:
                _exec_process(sc, proc, privs, filt, sock_fd, preserve, report)
            except BaseException as e:
                ch.to_parent({"error": describe(e)})
            os._exit(127)
        ch.to_parent({"pid": pid})
        os._exit(0)
    except BaseException as e:
        ch.to_parent({"error": describe(e)})
        os._exit(1)


def _exec_process(sc: L.Syscalls, proc: Process, privs: process.Privileges, filt: Any,
                  sock_fd: int | None, preserve: int, report: int) -> None:
    if sock_fd is not None:
        from crid.oci import console

        console.setup_pty(sock_fd, proc.get("consoleSize"))
    process.set_rlimits(proc)
    privs.drop_bounding()
    if filt is not None and not proc.get("noNewPrivileges"):
        filt.load()
        filt = None
    privs.set_user()
    env = process.env_of(proc, process.home_of(os.getuid()))
    process.enter_cwd(proc.get("cwd") or "/")
    path = process.lookup(proc["args"][0], env)
    privs.set_caps()
    privs.no_new_privs()
    for fd in range(3, 3 + preserve):
        try:
            os.set_inheritable(fd, True)
        except OSError:
            pass
    sc.cloexec_from(3 + preserve)
    # Through the sealed trampoline: /proc/self/exe during the program's
    # execve is never the host's Python. It writes a failed execve's errno
    # to `report` as three digits, and closes it when execve succeeds.
    tramp = trampoline.prepare(path, report, b"000", 0)
    process.default_signals()
    if filt is not None:
        filt.load()
    trampoline.run(tramp, path, proc["args"], env, report)
