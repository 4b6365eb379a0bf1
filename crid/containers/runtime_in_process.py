"""crid's own runtime's verbs run inside the daemon: no process per call.

A ``crid-runtime`` process costs a Python start-up (~8 ms) before it does
anything; ``start``, ``kill``, ``state``, ``delete``, ``update``, ``pause``,
``resume`` and ``ps`` need no process of their own, so for a handler
whose runtime runs the daemon's own code (``choose``: this install's
``crid-runtime``, or a launcher of the daemon's own crid tree) the daemon
calls the verbs' library functions (``crid.oci.verbs.*``, what the CLI's
``main`` calls) on a worker thread instead. ``create`` and ``exec`` still
run as commands: conmon must be their parent. Any other handler (runc, a
wrapper, a crid-runtime of another install) keeps ``RuntimeCommand``.

The state on disk (``--root``) stays the one truth: the CLI and the daemon
can act on the same container in turn. Results and failures are the CLI's:
an error becomes the line the CLI would print (``crid-runtime: ...``) and
then the same ``RuntimeFailed`` words (``monitor.runtime_failed``), which
callers such as ``Monitor.delete`` read.

On a thread of the daemon a verb must leave the process as it found it.
The verbs here change no cwd, umask, environment or signal disposition;
``delete`` reaps nothing (``reap=False``: a ``waitpid(-1)`` would take exit
statuses asyncio's watcher waits for); every fd they open is close-on-exec
and closed again. What waits is bounded: each call gets a deadline
(``RUNTIME_TIMEOUT``) that ``start``'s wait for init and every hook obey;
the freezer (5 s), ``delete``'s kill-and-wait (10 s) and cgroup removal
(5 s) have bounds of their own; and the caller stops waiting at
``RUNTIME_TIMEOUT`` whatever the thread does, as it kills a runtime command
then (a thread cannot be killed: it ends at its deadline, just after).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import crid
from crid import logs
from crid.config import Handler, own_runtime_path
from crid.containers.monitor import (
    RUNTIME_TIMEOUT,
    RuntimeCommand,
    RuntimeVerbs,
    runtime_failed,
    runtime_timed_out,
)
from crid.oci import launcher
from crid.oci.context import Context
from crid.oci.errors import CridError, describe
from crid.oci.runtime_spec import Resources, State
from crid.oci.verbs import delete, kill, pause, ps, resume, start, update
from crid.oci.verbs import state as state_verb

log = logs.get("crid.runtime")
T = TypeVar("T")
# The thread's own deadline comes this long after the caller's, so that a
# caller gives up first, with the words a runtime command's timeout gives.
THREAD_GRACE = 0.5
LAUNCHER_LIMIT = 4096  # a launcher is a few lines; anything longer is something else


class _DaemonContext(Context):
    """A verb's context inside the daemon: warnings go to the daemon's log."""

    def __init__(self, root: str, handler_name: str, deadline: float) -> None:
        super().__init__()
        self.root = root
        self.deadline = deadline
        self.handler_name = handler_name

    def warn(self, msg: str) -> None:
        log.warning("runtime warning", handler=self.handler_name, warning=msg)


class InProcessVerbs:
    """``RuntimeVerbs`` through crid-runtime's library code, on worker threads."""

    def __init__(self, handler: Handler, runtime_root: Path) -> None:
        self.handler = handler
        self.root = os.path.abspath(runtime_root)  # as the CLI makes its --root

    async def start(self, container_id: str) -> None:
        await self._call("start", lambda ctx: start.start(ctx, container_id))

    async def kill(self, container_id: str, signum: int, *, all_processes: bool = False) -> None:
        await self._call("kill", lambda ctx: kill.kill(ctx, container_id, signum,
                                                       all_processes=all_processes))

    async def delete(self, container_id: str, *, force: bool = False) -> None:
        await self._call("delete", lambda ctx: delete.delete_container(ctx, container_id, force))

    async def state(self, container_id: str) -> State:
        return await self._call("state", lambda ctx: state_verb.state(ctx, container_id))

    async def update(self, container_id: str, resources: Resources, bundle: Path) -> None:
        # As the CLI would read it from a file: plain JSON, a copy of its own.
        copied: Resources = json.loads(json.dumps(resources))
        await self._call("update", lambda ctx: update.update(ctx, container_id, copied))

    async def pause(self, container_id: str) -> None:
        await self._call("pause", lambda ctx: pause.pause(ctx, container_id))

    async def resume(self, container_id: str) -> None:
        await self._call("resume", lambda ctx: resume.resume(ctx, container_id))

    async def ps(self, container_id: str) -> list[int]:
        return await self._call("ps", lambda ctx: ps.pids(ctx, container_id))

    async def _call(self, verb: str, call: Callable[[Context], T]) -> T:
        ctx = _DaemonContext(self.root, self.handler.name,
                             time.monotonic() + RUNTIME_TIMEOUT + THREAD_GRACE)
        try:
            return await asyncio.wait_for(asyncio.to_thread(_run, call, ctx), RUNTIME_TIMEOUT)
        except TimeoutError:
            raise runtime_timed_out(self.handler.name, verb) from None
        except _VerbFailed as exc:
            raise runtime_failed(self.handler.name, verb, exc.stderr, 1) from None


class _VerbFailed(Exception):
    def __init__(self, stderr: bytes) -> None:
        super().__init__()
        self.stderr = stderr


def _run(call: Callable[[Context], T], ctx: Context) -> T:
    """The call, with a failure turned into what the CLI writes to stderr for
    it (``crid.oci.cli.run``: every ``Exception``, exit code 1)."""
    try:
        return call(ctx)
    except Exception as e:  # the CLI's own rule: any failure is the verb's
        if not isinstance(e, CridError | OSError):  # a bug, not the runtime saying no
            log.error("runtime verb raised", exc_info=True)
        raise _VerbFailed(f"crid-runtime: {describe(e)}\n".encode()) from None


def choose(handler: Handler, runtime_root: Path) -> RuntimeVerbs:
    """In-process verbs for the handler whose runtime runs the daemon's own
    code; the command line for any other. Asked when a handler's monitor is
    first made, not while wiring."""
    if runs_own_code(handler.path):
        log.info("runtime verbs in-process", handler=handler.name, path=handler.path)
        return InProcessVerbs(handler, runtime_root)
    log.info("runtime verbs as commands", handler=handler.name, path=handler.path)
    return RuntimeCommand(handler, runtime_root)


def runs_own_code(path: str) -> bool:
    """Whether the runtime at ``path`` is crid-runtime from the daemon's own
    crid tree: this install's (beside the interpreter), or a launcher
    (``crid.oci.launcher``, any interpreter) of the tree the daemon was
    imported from, as a wheel's layout or a benchmark's copy has it."""
    try:
        if os.path.samefile(path, own_runtime_path()):
            return True
        with open(path, "rb") as f:
            head = f.read(LAUNCHER_LIMIT)
    except OSError:
        return False
    tree = os.path.dirname(os.path.dirname(os.path.abspath(crid.__file__)))
    own = launcher.script("python", tree).encode()
    # The first line names the interpreter: any will run the same code.
    return head.startswith(b"#!") and head.partition(b"\n")[2] == own.partition(b"\n")[2]
