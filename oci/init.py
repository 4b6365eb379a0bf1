"""The container's init process (forked by ``create``), from fresh namespaces to
execve: mounts and pivot_root, hostname, sysctls, masked/read-only paths,
terminal, privileges, then a block on the exec fifo until ``start``.

Everything that needs an import or a library (libseccomp, socket, subprocess)
is loaded before pivot_root: the host's Python is not inside the rootfs.
"""

from __future__ import annotations

import os

from crid.oci import hooks, process, procfs, trampoline
from crid.oci import linux as L
from crid.oci.rootfs import Rootfs
from crid.oci.sync import Channel

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from crid.oci.runtime_spec import Linux, Process, Spec, State

    from crid.jsontypes import Json


class Init:
    def __init__(self, ch: Channel, cfg: Spec, opts: Json) -> None:
        self.ch = ch
        self.cfg = cfg
        self.opts = opts  # bundle, rootfs, fifo, console_socket, no_pivot, preserve_fds, cgroup
        self.sc = L.syscalls()
        self.proc: Process = cfg["process"]
        self.linux: Linux = cfg.get("linux") or {}

    def run(self) -> None:
        cfg, opts, sc = self.cfg, self.opts, self.sc
        fifo = int(opts["fifo_fd"])
        sock = None
        if self.proc.get("terminal"):
            from crid.oci import console

            sock = console.connect(opts["console_socket"])
        filt = None
        if self.linux.get("seccomp"):
            from crid.oci import seccomp

            filt = seccomp.Filter.build(self.linux["seccomp"])
        if cfg.get("hooks"):
            import subprocess  # noqa: F401  (hooks run after pivot_root, away from the stdlib)
        privs = process.Privileges.of(sc, self.proc)
        in_userns = any(n["type"] == "user" for n in self.linux.get("namespaces") or [])
        fs = Rootfs(sc, cfg, opts["rootfs"], opts["bundle"], opts["cgroup"], in_userns,
                    await_cgroup=None if opts["join_cgroup"] else self._await_parent)
        fs.prepare()
        fs.mount_all()
        fs.create_devices()
        fs.await_cgroup()  # hooks and the process must find us in our cgroup
        self.ch.to_parent({"hooks": "createRuntime"})
        self._await_parent()
        hooks.run(cfg, "createContainer", self.state("created"))
        fs.pivot(bool(opts.get("no_pivot")))
        if cfg.get("hostname"):
            sc.sethostname(cfg["hostname"])
        if cfg.get("domainname"):
            sc.setdomainname(cfg["domainname"])
        for key, value in (self.linux.get("sysctl") or {}).items():
            procfs.write_sysctl(sc, fs.proc(), key, value)
        fs.readonly_paths()
        fs.masked_paths()
        fs.finalize()
        if sock is not None:
            from crid.oci import console

            console.setup_pty(sock, self.proc.get("consoleSize"))
        else:
            os.setsid()
        process.set_rlimits(self.proc)
        privs.drop_bounding()
        if filt is not None and not self.proc.get("noNewPrivileges"):
            filt.load()
            filt = None
        privs.set_user()
        env = process.env_of(self.proc, process.home_of(os.getuid()))
        process.enter_cwd(self.proc.get("cwd") or "/")
        path = process.lookup(self.proc["args"][0], env)
        privs.set_caps()
        self.ch.to_parent({"ready": True})
        # The runtime's last word (its state saved, the pid file written)
        # comes before we wait for `start`. A runtime that fails has conmon
        # read its error from the runtime's stderr, a pipe we hold too (our
        # stderr): were a killed runtime to leave us waiting on the fifo,
        # that read, and the CreateContainer behind it, would wait for ever.
        if self.ch.from_parent() is None:
            _runtime_died()
        os.close(self.ch.c_write)
        os.close(self.ch.c_read)
        # Block until `start` opens the fifo for reading.
        w = os.open(f"/proc/self/fd/{fifo}", os.O_WRONLY | os.O_CLOEXEC)
        os.write(w, b"0")
        os.close(w)
        os.close(fifo)
        hooks.run(cfg, "startContainer", self.state("running"))
        keep = 3 + int(opts.get("preserve_fds") or 0)
        for fd in range(3, keep):
            try:
                os.set_inheritable(fd, True)
            except OSError:
                pass
        sc.cloexec_from(keep)
        # Through the sealed trampoline (see crid.oci.trampoline): the host's
        # Python is never /proc/self/exe when the program is exec'd. Our
        # channel is closed by now: a failed execve is reported on stderr,
        # through a copy of it that the trampoline closes on success.
        report = sc.fcntl(2, L.F_DUPFD, keep) if _is_open(2) else -1
        tmpl = f"crid-runtime: exec failed: {path[:1024]}: errno 000\n".encode(errors="replace")
        tramp = trampoline.prepare(path, report, tmpl, tmpl.rfind(b"000"), status=1)
        privs.no_new_privs()
        process.default_signals()
        if filt is not None:
            filt.load()
        trampoline.run(tramp, path, self.proc["args"], env, report)

    def _await_parent(self) -> None:
        """Wait for the runtime's go-ahead (our cgroup made and joined, or the
        createRuntime hooks run); exit if it gave up on us."""
        if self.ch.from_parent() is None:
            os._exit(1)

    def state(self, status: str) -> State:
        # ociVersion is there: crid.oci.config checked the bundle before init ran.
        return {"ociVersion": self.cfg["ociVersion"], "id": self.opts["id"],
                "status": status, "pid": os.getpid(), "bundle": self.opts["bundle"],
                "annotations": self.cfg.get("annotations") or {}}


def _runtime_died() -> None:
    """Say so on stderr, where our caller (conmon) looks for the runtime's
    error, and end: the runtime cannot be waiting for us any more."""
    try:
        os.write(2, b"crid-runtime: the runtime's create process died before the container "
                    b"was created\n")
    except OSError:
        pass
    os._exit(1)


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True
