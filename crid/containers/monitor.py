"""conmon, the per-container monitor, and the OCI runtime it drives.

crid never holds a container's stdio or waits on its process: conmon does
(one small C process per container, as in cri-o). crid starts conmon with a
*start pipe* (conmon waits on it before calling ``RUNTIME create``) and a
*sync pipe* (conmon reports the container's pid, or the runtime's error, as
JSON). conmon then daemonises; when the container exits it writes the exit
code to ``<exits>/<id>`` and exits itself.

exec is a direct call of the handler's runtime with runc's command line.
The other verbs (start, kill, delete, state, update, pause, resume, ps) go
through a ``RuntimeVerbs`` seam: ``RuntimeCommand`` runs the handler's
runtime with runc's command line, so runc and crid-runtime are
interchangeable; for crid's own runtime the composition root gives the
monitor ``crid.containers.runtime_in_process.InProcessVerbs`` instead, the
same library code without a process. Both fail with the same
``RuntimeFailed`` words (``runtime_failed``), which callers read.

The bundle dir holds what conmon makes for a container: ``attach`` (the
attach socket), ``ctl`` and ``winsz`` (control fifos), and ``exit``/``oom``
(written through ``--persist-dir``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from crid import errors, logs, private
from crid.config import Handler
from crid.containers import exec_output
from crid.containers.exec_output import ExecResult
from crid.oci import attach_prime
from crid.oci.runtime_spec import Process, Resources, State
from crid.oci.signals import from_returncode
from crid.oci.state import read_proc_stat, stat_running

CONMON = "/usr/bin/conmon"
SYNC_TIMEOUT = 60.0
REPORT_LIMIT = 64 << 10  # conmon's report: a pid, or the runtime's error (conmon reads 8 KiB)
SILENT_DEATH = "the runtime (or conmon) ended without saying why (killed?)"
RUNTIME_TIMEOUT = 60.0
EXEC_REAP_SECONDS = 5.0
# conmon's control fifo: "<event> <height> <width>\n"; event 2 reopens the log.
REOPEN_LOG_EVENT = "2 0 0\n"

log = logs.get("crid.monitor")


@dataclasses.dataclass(frozen=True)
class Created:
    pid: int  # the container's init process, on the host
    monitor_pid: int  # conmon


class RuntimeFailed(errors.CridError):
    """The OCI runtime said no; ``message`` carries its own words."""

    code = "UNKNOWN"


def runtime_failed(handler_name: str, verb: str, stderr: bytes, returncode: int
                   ) -> RuntimeFailed:
    """What a runtime's failed verb becomes, whichever way it ran."""
    return RuntimeFailed(f"{handler_name} runtime {verb} failed: "
                         f"{_runtime_error(stderr) or f'exit code {returncode}'}")


def runtime_timed_out(handler_name: str, verb: str) -> RuntimeFailed:
    return RuntimeFailed(f"{handler_name} runtime {verb} timed out")


class RuntimeVerbs(Protocol):
    """The runtime's verbs on containers it created, as runc names them; each
    raises ``RuntimeFailed`` with the runtime's words when it says no, and
    gives up after ``RUNTIME_TIMEOUT``."""

    async def start(self, container_id: str) -> None: ...

    async def kill(self, container_id: str, signum: int, *,
                   all_processes: bool = False) -> None: ...

    async def delete(self, container_id: str, *, force: bool = False) -> None: ...

    async def state(self, container_id: str) -> State: ...

    async def update(self, container_id: str, resources: Resources, bundle: Path) -> None: ...

    async def pause(self, container_id: str) -> None: ...

    async def resume(self, container_id: str) -> None: ...

    async def ps(self, container_id: str) -> list[int]: ...


class RuntimeCommand:
    """``RuntimeVerbs`` as the handler's runtime command line (any handler)."""

    def __init__(self, handler: Handler, runtime_root: Path) -> None:
        self.handler = handler
        self.runtime_root = runtime_root

    async def start(self, container_id: str) -> None:
        await self.run("start", container_id)

    async def kill(self, container_id: str, signum: int, *, all_processes: bool = False) -> None:
        await self.run("kill", *(["--all"] if all_processes else []), container_id, str(signum))

    async def delete(self, container_id: str, *, force: bool = False) -> None:
        await self.run("delete", *(["--force"] if force else []), container_id)

    async def state(self, container_id: str) -> State:
        state: State = json.loads(await self.run("state", container_id))
        return state

    async def update(self, container_id: str, resources: Resources, bundle: Path) -> None:
        path = bundle / "resources.json"
        private.write_text(path, json.dumps(resources))
        await self.run("update", "--resources", str(path), container_id)

    async def pause(self, container_id: str) -> None:
        await self.run("pause", container_id)

    async def resume(self, container_id: str) -> None:
        await self.run("resume", container_id)

    async def ps(self, container_id: str) -> list[int]:
        pids: list[int] = json.loads(await self.run("ps", "--format", "json", container_id))
        return pids

    async def run(self, *args: str) -> bytes:
        proc = await asyncio.create_subprocess_exec(
            self.handler.path, "--root", str(self.runtime_root), *args,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), RUNTIME_TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise runtime_timed_out(self.handler.name, args[0]) from None
        if proc.returncode != 0:
            raise runtime_failed(self.handler.name, args[0], err, proc.returncode or 0)
        return out


class Monitor:
    """Runs containers of one runtime handler under conmon."""

    def __init__(self, handler: Handler, runtime_root: Path, exits_dir: Path,
                 conmon: str = CONMON, log_level: str = "info",
                 verbs: RuntimeVerbs | None = None) -> None:
        self.handler = handler
        self.runtime_root = runtime_root
        self.exits_dir = exits_dir
        self.conmon = conmon
        self.log_level = "debug" if log_level == "debug" else "info"
        self.verbs: RuntimeVerbs = verbs or RuntimeCommand(handler, runtime_root)

    @staticmethod
    def prime_cgroup_move() -> None:
        """We are about to run the runtime's create or exec, whose first move of
        a process into a cgroup waits ~10-20 ms for the kernel (see
        crid.oci.attach_prime): start that wait here, so it runs while conmon
        and the runtime start up instead of after."""
        attach_prime.start()

    # --- create: conmon + runtime create --------------------------------------

    async def create(self, container_id: str, name: str, bundle: Path, log_path: Path, *,
                     tty: bool = False, stdin: bool = False, stdin_once: bool = False) -> Created:
        """Create the container (its process waits for ``start``) under a new conmon."""
        self.exits_dir.mkdir(parents=True, exist_ok=True)
        (self.exits_dir / container_id).unlink(missing_ok=True)
        args = [
            self.conmon, "--api-version", "1",
            "-c", container_id, "-u", container_id, "-n", name,
            "-r", self.handler.path, "--runtime-arg", f"--root={self.runtime_root}",
            "-b", str(bundle), "-p", str(bundle / "pidfile"), "-P", str(bundle / "conmon.pid"),
            "--persist-dir", str(bundle), "--exit-dir", str(self.exits_dir),
            "--socket-dir-path", str(bundle), "--full-attach",
            "-l", f"k8s-file:{log_path}", "--log-level", self.log_level,
        ]
        if tty:
            args.append("-t")
        elif stdin:
            args.append("-i")
        if stdin and not stdin_once:
            args.append("--leave-stdin-open")
        sync_read, sync_write = os.pipe()
        start_read, start_write = os.pipe()
        self.prime_cgroup_move()
        try:
            process = await asyncio.create_subprocess_exec(
                *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE, pass_fds=(sync_write, start_read),
                # conmon also writes its "oom" file into its working directory: keep it
                # in the bundle, not in wherever crid was started.
                cwd=str(bundle),
                env={**os.environ, "_OCI_SYNCPIPE": str(sync_write),
                     "_OCI_STARTPIPE": str(start_read)},
            )
        finally:
            os.close(sync_write)
            os.close(start_read)
        try:
            os.write(start_write, b"0")
        finally:
            os.close(start_write)
        try:
            report = await asyncio.wait_for(_read_report(sync_read), SYNC_TIMEOUT)
        except TimeoutError:
            _abandon(process, bundle, container_id)
            raise RuntimeFailed(
                f"{self.handler.name} runtime did not create the container within "
                f"{SYNC_TIMEOUT:.0f}s; its monitor and runtime were killed") from None
        except BaseException:  # cancelled: the caller's undo must not race a create going on
            _abandon(process, bundle, container_id)
            raise
        _, conmon_stderr = await process.communicate()
        pid, message = _parse_sync(report)
        if pid <= 0:
            detail = _runtime_error((message or conmon_stderr.decode(errors="replace")).encode())
            raise RuntimeFailed(f"{self.handler.name} runtime failed to create the container: "
                                f"{detail or SILENT_DEATH}")
        return Created(pid=pid, monitor_pid=self._conmon_pid(bundle, container_id))

    def _conmon_pid(self, bundle: Path, container_id: str) -> int:
        """conmon's pid. Its launcher writes ``conmon.pid`` after forking the
        real conmon, then exits: a launcher killed in between leaves conmon
        running (it reported the container's pid) and the file unwritten. Then
        conmon is found by its command line, and the file written for it."""
        path = bundle / "conmon.pid"
        try:
            return _read_pid(path)
        except (OSError, ValueError):
            pass
        found = [pid for pid, cid in conmons_writing_to(self.exits_dir) if cid == container_id]
        if len(found) != 1:
            raise RuntimeFailed(f"{self.handler.name}: the container's monitor (conmon) "
                                f"left no {path.name} and {len(found)} conmons of it run")
        path.write_text(str(found[0]))
        return found[0]

    # --- the other verbs: through the handler's RuntimeVerbs ---------------------

    async def start(self, container_id: str) -> None:
        await self.verbs.start(container_id)

    async def kill(self, container_id: str, signum: int, *, all_processes: bool = False) -> None:
        await self.verbs.kill(container_id, signum, all_processes=all_processes)

    async def delete(self, container_id: str, *, force: bool = False) -> None:
        """Delete the runtime's state; a container it no longer knows is fine."""
        try:
            await self.verbs.delete(container_id, force=force)
        except RuntimeFailed as exc:
            if "does not exist" not in exc.message and "not found" not in exc.message:
                raise

    async def state(self, container_id: str) -> State:
        return await self.verbs.state(container_id)

    async def update(self, container_id: str, resources: Resources, bundle: Path) -> None:
        await self.verbs.update(container_id, resources, bundle)

    async def exec_sync(self, container_id: str, process: Process, bundle: Path,
                        timeout: float | None,
                        output_limit: int = exec_output.DEFAULT_LIMIT) -> ExecResult:
        """Run a process in the container and collect its output, both streams
        together capped at ``output_limit`` bytes (``crid.containers.exec_output``).

        On timeout the process is killed (by its host pid, since killing the
        runtime's exec command would leave it running in the container) and
        ``DeadlineExceeded`` raised, as the CRI asks.
        """
        spec_file = bundle / f"exec-{os.urandom(6).hex()}.json"
        pid_file = spec_file.with_suffix(".pid")
        private.write_text(spec_file, json.dumps(process))  # env: secrets
        self.prime_cgroup_move()
        try:
            proc = await asyncio.create_subprocess_exec(
                *self._runtime_args("exec", "--process", str(spec_file),
                                    "--pid-file", str(pid_file), container_id),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            assert proc.stdout is not None and proc.stderr is not None
            return await exec_output.collect(
                proc.stdout, proc.stderr, _exit_code(proc), limit=output_limit,
                timeout=timeout, stop=lambda: stop_exec(pid_file, proc),
                command=process.get("args"))
        finally:
            spec_file.unlink(missing_ok=True)
            pid_file.unlink(missing_ok=True)

    def _runtime_args(self, *args: str) -> list[str]:
        return [self.handler.path, "--root", str(self.runtime_root), *args]

    # --- what conmon leaves behind ------------------------------------------

    def exit_code(self, container_id: str) -> int | None:
        """The exit code conmon recorded, or None while the container runs."""
        try:
            text = (self.exits_dir / container_id).read_text().strip()
        except FileNotFoundError:
            return None
        return int(text) if text.lstrip("-").isdigit() else 255

    def exited_at_ns(self, container_id: str) -> int:
        try:
            return (self.exits_dir / container_id).stat().st_mtime_ns
        except FileNotFoundError:
            return 0

    def forget(self, container_id: str) -> None:
        (self.exits_dir / container_id).unlink(missing_ok=True)


async def _exit_code(proc: asyncio.subprocess.Process) -> int:
    return from_returncode(await proc.wait())


async def stop_exec(pid_file: Path, proc: asyncio.subprocess.Process) -> None:
    """Kill an exec'd process and let the runtime's exec command reap it.

    The process is killed by its host pid: killing the runtime's exec alone
    would leave it running in the container. The exec command is given a
    moment to reap it and exit; killed first, it would leave an unreaped
    zombie in the container's cgroup, which then cannot be removed.
    """
    with contextlib.suppress(OSError, ValueError):
        os.kill(_read_pid(pid_file), signal.SIGKILL)
    try:
        await asyncio.wait_for(asyncio.shield(proc.wait()), EXEC_REAP_SECONDS)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


def oom_killed(bundle: Path) -> bool:
    """conmon writes ``oom`` into its persist dir when the cgroup saw an OOM kill."""
    return (bundle / "oom").exists()


def reopen_log(bundle: Path) -> None:
    """Ask conmon to reopen the container's log (after kubelet rotated it)."""
    ctl = bundle / "ctl"
    try:
        fd = os.open(ctl, os.O_WRONLY | os.O_NONBLOCK)
    except (FileNotFoundError, OSError) as exc:
        raise errors.FailedPrecondition(
            f"cannot reach the container's monitor to reopen its log: {exc}") from exc
    try:
        os.write(fd, REOPEN_LOG_EVENT.encode())
    finally:
        os.close(fd)


def conmons_writing_to(exits: Path) -> Iterator[tuple[int, str]]:
    """(pid, container id) of every conmon writing its exit into ``exits``."""
    want = str(exits).encode()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            argv = Path(entry.path, "cmdline").read_bytes().split(b"\0")
            owner = entry.stat().st_uid
        except OSError:
            continue
        if owner != 0:  # crid runs conmon as root; anyone can name a process "conmon"
            continue
        if not argv or os.path.basename(argv[0]) != b"conmon":
            continue
        args = dict(itertools.pairwise(argv))
        if args.get(b"--exit-dir") == want and b"-c" in args:
            yield int(entry.name), args[b"-c"].decode(errors="replace")


def monitor_alive(pid: int, container_id: str) -> bool:
    """Is ``pid`` still this container's conmon (not a reused pid)?"""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    stat = read_proc_stat(pid)
    return stat is not None and stat_running(stat) and container_id.encode() in cmdline


async def _read_report(fd: int) -> bytes:
    """conmon's report: one JSON line (the daemonised conmon keeps the pipe open,
    so no EOF comes after it), or what came before EOF (conmon gone). Takes
    ``fd``: closed on return, and if the wait is given up (no thread is left
    blocked in a read of it)."""
    pipe = open(fd, "rb", buffering=0)  # noqa: SIM115 - the transport closes it
    try:
        reader = asyncio.StreamReader(limit=REPORT_LIMIT)
        transport, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe)
    except BaseException:
        pipe.close()
        raise
    try:
        return await reader.readline()
    except ValueError:  # longer than any report
        return b""
    finally:
        transport.close()


def _abandon(launcher: asyncio.subprocess.Process, bundle: Path, container_id: str) -> None:
    """Kill a create we stopped waiting for: conmon and, in its process group
    (conmon starts a session), the runtime's create and that one's child.
    The container's init left the group (a session of its own): the caller's
    undo kills it with the cgroup. Killing conmon alone would not do: its
    runtime gets SIGKILL only as conmon dies, and could still be making the
    state or cgroup the undo is removing."""
    with contextlib.suppress(ProcessLookupError):
        launcher.kill()  # it forks the real conmon and exits; seldom still here
    try:
        pid = _read_pid(bundle / "conmon.pid")
    except (OSError, ValueError):
        return  # conmon never got as far as forking
    # conmon is our child (crid is a child subreaper) until reaped: the pid is
    # its, or its zombie's, unless conmon.pid was rewritten.
    if monitor_alive(pid, container_id):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):  # not yet a group of its own
            os.kill(pid, signal.SIGKILL)


def _parse_sync(report: bytes) -> tuple[int, str]:
    """conmon's sync pipe: ``{"data": PID}`` or ``{"data": -1, "message": ...}``."""
    for line in report.decode(errors="replace").splitlines():
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            continue
        pid = int(message.get("data", message.get("pid", -1)))
        return pid, str(message.get("message", ""))
    return -1, ""


def _read_pid(path: Path) -> int:
    return int(path.read_text().strip())


def _runtime_error(data: bytes) -> str:
    """The runtime's own words for a failure: its error line (runc logs
    warnings before it), else its last line. Not conmon's own warnings
    (``[conmon:w]: ...``): its child writes them to the same pipe before it
    runs the runtime, and they are all there is when the runtime said nothing."""
    lines = [line for line in data.decode(errors="replace").splitlines()
             if line.strip() and not line.startswith("[conmon:")]
    if not lines:
        return ""
    errors_only = [line for line in lines if "level=error" in line or '"level":"error"' in line]
    last = (errors_only or lines)[-1]
    # runc logs JSON or logfmt lines (msg="..."); keep the message people read.
    with contextlib.suppress(json.JSONDecodeError, AttributeError):
        return str(json.loads(last).get("msg", last))
    if 'msg="' in last:
        return last.split('msg="', 1)[1].rsplit('"', 1)[0]
    return last

