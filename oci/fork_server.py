"""The exec fork server: ``crid-runtime exec`` for ExecSync, started once, forked per exec.

Every ExecSync (kubelet's probes) used to start a ``crid-runtime exec``: an
interpreter start-up and its imports, every time. The daemon instead starts
this module once (``python -I -m crid.oci.fork_server --root R --socket S
--parent PID``); it imports what exec needs and waits on a unix socket.

One connection is one exec. The server forks a *session* for it at once and
goes back to ``accept``: it never reads a request itself, never joins
anything and never leaves the host's namespaces. The session:

1. reads the request: a 4-byte length with three fds attached (SCM_RIGHTS:
   the process's stdin, stdout and stderr, made by the daemon), then that
   many bytes of JSON, ``{"container": ID, "process": PROCESS}``; bounded in
   size (``MAX_REQUEST``) and time (``REQUEST_SECONDS``);
2. puts the fds on 0, 1 and 2 and closes every other fd but the connection;
3. runs exactly what ``crid-runtime exec`` runs (``crid.oci.verbs.exec``:
   the state check, then a first child that joins the container's cgroup and
   namespaces all-or-nothing, non-dumpable, and forks the process, which drops
   to its user, capabilities, seccomp and rlimits and execs with only 0, 1, 2);
4. answers ``{"pid": N}`` with a pidfd of the process attached (the daemon
   kills by it on a timeout: no pid reuse), then, as the process's subreaper,
   ``{"exit": CODE}`` once it has reaped it; or ``{"error": MESSAGE}``.

Answers are 4-byte little-endian lengths followed by JSON. A session dies
with the server (``PR_SET_PDEATHSIG``) and the server with the daemon, so a
killed server leaves no exec unsupervised: the daemon sees the connection
end without an exit code, kills the process by its pidfd and fails the call.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # no stub: the C half of `signal`
import ctypes
import json
import os
import socket
import sys
import time

# What the exec's children use, imported (and libseccomp loaded) once, here.
from crid.oci import cgroups, config, namespaces, process, seccomp, signals, trampoline  # noqa: F401
from crid.oci import linux as L
from crid.oci.errors import InvalidArgument, describe
from crid.oci.verbs import exec as exec_verb

TYPE_CHECKING = False
if TYPE_CHECKING:
    from crid.oci.runtime_spec import Process

    from crid.jsontypes import Json

MAX_REQUEST = 4 << 20  # env and args; execve itself takes a few MiB at most
MAX_ANSWER = 64 << 10
REQUEST_SECONDS = 10.0
STDIO = 3
LENGTH = 4
READY = b"ready\n"
BACKLOG = 128
ERROR_PAUSE = 0.1  # after a failed accept or fork: no busy loop while the node is short
FD_MAX = 0x7FFFFFFF  # closerange's end: close_range(2) takes any


def frame(msg: Json) -> bytes:
    """``msg`` as it travels on the connection: a length, then JSON."""
    data = json.dumps(msg).encode()
    return len(data).to_bytes(LENGTH, "little") + data


def listen(path: str) -> socket.socket:
    """A socket at ``path`` only root (its owner) may connect to: 0600 from birth."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # close-on-exec
    old = os.umask(0o177)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(BACKLOG)
    return sock


def serve(root: str, path: str, parent: int) -> int:
    sc = L.syscalls()
    sc.prctl(L.PR_SET_PDEATHSIG, signals.SIGKILL)
    if os.getppid() != parent:  # the daemon died before the line above
        return 1
    # Neither the server nor its sessions (who inherit it) are open to
    # ptrace or /proc/<pid>/fd of a process that is not root with every cap.
    sc.prctl(L.PR_SET_DUMPABLE, 0)
    listener = listen(path)
    try:  # dlopen'd once here: a session's child finds it loaded (seccomp.Filter.build)
        ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError:
        pass  # a spec that asks for seccomp then fails as crid-runtime exec does
    # Sessions are reaped by the kernel; the server waits for nothing.
    _signal.signal(_signal.SIGCHLD, _signal.SIG_IGN)
    os.write(1, READY)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    server = os.getpid()
    while True:
        # Out of fds or memory: that exec fails; the server and its sessions stay.
        try:
            conn, _ = listener.accept()
        except OSError:
            time.sleep(ERROR_PAUSE)
            continue
        try:
            pid = os.fork()
        except OSError:
            conn.close()
            time.sleep(ERROR_PAUSE)
            continue
        if pid == 0:
            code = 1
            try:
                listener.close()
                code = session(sc, conn, root, server)
            finally:
                os._exit(code)
        conn.close()


def session(sc: L.Syscalls, conn: socket.socket, root: str, server: int) -> int:
    """One exec, from request to exit code; what ``serve`` forks per connection."""
    _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)  # we wait for our process
    sc.prctl(L.PR_SET_PDEATHSIG, signals.SIGKILL)
    if os.getppid() != server:
        return 1
    sc.prctl(L.PR_SET_CHILD_SUBREAPER, 1)
    try:
        cid, proc = _request(conn)
        st = exec_verb.running(root, cid)
        config.validate_process(proc)
        process.check_unsupported(proc)
        if proc.get("terminal"):
            raise InvalidArgument("an exec through the fork server has no terminal")
        # Only the connection and the process's stdio stay open from here on.
        os.closerange(3, conn.fileno())
        os.closerange(conn.fileno() + 1, FD_MAX)
        pid = exec_verb.launch(st, st.get("config") or {}, proc, in_child=conn.close)
    except Exception as e:
        conn.sendall(frame({"error": describe(e)}))
        return 1
    pidfd = os.pidfd_open(pid)
    # The daemon reads the process's output until EOF: hold none of its pipes.
    null = os.open(os.devnull, os.O_RDWR)
    for fd in range(STDIO):
        os.dup2(null, fd)
    os.close(null)
    conn.settimeout(None)
    socket.send_fds(conn, [frame({"pid": pid})], [pidfd])
    os.close(pidfd)
    conn.sendall(frame({"exit": signals.wait_for(pid)}))
    return 0


def _request(conn: socket.socket) -> tuple[str, Process]:
    """The container id and process of a request; its fds become our 0, 1, 2."""
    conn.settimeout(REQUEST_SECONDS)
    head, fds, flags, _ = socket.recv_fds(conn, LENGTH, STDIO)
    if len(fds) != STDIO or flags & socket.MSG_CTRUNC or len(head) != LENGTH:
        for fd in fds:
            os.close(fd)
        raise InvalidArgument(f"an exec request carries {STDIO} fds and a length")
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    size = int.from_bytes(head, "little")
    if size > MAX_REQUEST:
        raise InvalidArgument(f"exec request of {size} bytes (at most {MAX_REQUEST})")
    body = bytearray()
    while len(body) < size:
        chunk = conn.recv(min(size - len(body), 1 << 16))
        if not chunk:
            raise InvalidArgument("exec request cut short")
        body += chunk
    req = json.loads(body)
    if not isinstance(req, dict) or not isinstance(req.get("container"), str) \
            or not isinstance(req.get("process"), dict):
        raise InvalidArgument("an exec request is {\"container\": ID, \"process\": PROCESS}")
    proc: Process = req["process"]
    return req["container"], proc


def main(argv: list[str]) -> int:
    flags = dict(zip(argv[::2], argv[1::2], strict=False))
    try:
        return serve(flags["--root"], flags["--socket"], int(flags["--parent"]))
    except KeyError:
        sys.stderr.write("usage: python -m crid.oci.fork_server --root DIR --socket PATH "
                         "--parent PID\n")
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
