"""Unpacking in a child process: ``python -m crid.image.unpack_worker PARENT_PID``.

Untarring is mostly Python work per entry; done in the daemon it would hold
the GIL against the event loop and against the other layers of the same pull.
A child per layer unpacks on its own core, and keeps the daemon responsive.
The parent writes one JSON line ``{"dest", "limit"}`` to the child's stdin,
then pipes the (compressed) layer bytes as they arrive from the registry;
the child answers one JSON line on stdout:
``{"diff_id", "size", "inodes"}`` or ``{"error", "unsafe"|"exhausted"|"errno"}``
(``errno`` of a failed write: a full disk is raised as that ``OSError`` in the
parent, where the caller knows which dir it fills).

The child's address space is capped (``MEMORY_LIMIT``): tarfile holds a
member's whole sparse map in memory, and a hostile layer could make that
map, or any other structure, as large as it likes. Past the cap the child
fails alone; the daemon only reads its one answer line.

A child's start-up (an interpreter, its imports: 50-100 ms, more on a busy
node) was most of a small image's pull, so ``Unpackers`` keeps spare
children started ahead of need while pulls come (from a pull's start, while
it fetches its manifest, until ``WARM_SECONDS`` after the last), each waiting
for its first line; a layer takes one and a new spare starts beside the
pull. An idle node keeps none: two interpreters would cost ~20 MB for
nothing. Each child still unpacks exactly one layer and exits, with its
limits set before it reads a byte.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import fcntl
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from crid.image.unpack import CHUNK, LayerTooBig, Readable, Unpacked, UnsafeLayer, unpack

from crid.disk_full import NO_SPACE
from crid.errors import CridError, ResourceExhausted

PIPE_BYTES = 1 << 20
PR_SET_PDEATHSIG = 1
# Address space of one unpacker: an interpreter, a 128 MiB zstd window and
# buffers fit many times over; a hostile sparse map does not.
MEMORY_LIMIT = 1 << 30
MAX_HEADER_BYTES = 64 * 1024  # the first line: a dest path and a limit
# Children kept started: a layer takes one without waiting for an interpreter.
DEFAULT_SPARES = 1
# Pulls come in bursts (a node drained, a deployment rolled): spares are kept
# this long after the last pull began, then ended.
WARM_SECONDS = 60.0


class Unpackers:
    """Unpacker children, ``spares`` of them started ahead of need.

    Spares are started by one long-lived thread of this object's own: a
    child's ``PR_SET_PDEATHSIG`` fires when the *thread* that forked it ends,
    so a spare forked by a pull's short-lived layer thread would be killed
    with that thread. A child started on demand (no spare ready) is forked
    by the thread that uses it, and lives no longer than that use. A used
    spare's replacement starts once no unpack is in flight (or none is left
    ready), so its interpreter's start-up does not take a core from the pull.
    """

    def __init__(self, spares: int = DEFAULT_SPARES, warm_seconds: float = WARM_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._spares = spares
        self._warm_seconds = warm_seconds
        self._clock = clock
        self._warm_until = 0.0
        self._ready: collections.deque[subprocess.Popen[bytes]] = collections.deque()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._busy = 0  # unpacks in flight

    def open(self) -> None:
        """Start the thread that keeps the spares ready."""
        if self._spares and self._thread is None:
            self._thread = threading.Thread(target=self._keep_spares,
                                            name="crid-unpack-spares", daemon=True)
            self._thread.start()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            spares, self._ready = list(self._ready), collections.deque()
            self._changed.notify_all()
        for child in spares:
            _end(child)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def expect_pulls(self) -> None:
        """A pull began: have spares ready for its layers, and for pulls
        that follow within the warm window."""
        with self._changed:
            self._warm_until = self._clock() + self._warm_seconds
            self._changed.notify_all()

    def ready(self) -> list[int]:
        """The pids of the spares waiting for a layer."""
        with self._changed:
            return [child.pid for child in self._ready]

    def _keep_spares(self) -> None:
        while True:
            with self._changed:
                while not self._closed and not self._wanted():
                    left = self._warm_until - self._clock()
                    if self._ready and left <= 0:
                        break
                    self._changed.wait(timeout=left if self._ready else None)
                if self._closed:
                    return
                cooled = [] if self._wanted() else list(self._ready)
                if cooled:
                    self._ready.clear()
            if cooled:  # no pull for the warm window: the spares are ended
                for child in cooled:
                    _end(child)
                continue
            try:
                child = _start()
            except OSError:  # no memory or pids for a spare now: layers start their own
                with self._changed:
                    self._changed.wait(timeout=1.0)
                continue
            with self._changed:
                if self._closed:
                    _end(child)
                    return
                self._ready.append(child)

    def _wanted(self) -> bool:
        """Whether to start a spare now (the lock held). A replacement's
        start-up (~0.1 s of CPU) waits for the unpacks in flight, unless none
        is left ready: on 2 cores it would slow them."""
        return (self._clock() < self._warm_until and len(self._ready) < self._spares
                and not (self._busy and self._ready))

    def _take(self) -> subprocess.Popen[bytes]:
        with self._changed:
            while self._ready:
                child = self._ready.popleft()
                self._changed.notify_all()
                if child.poll() is None:
                    return child
                _end(child)  # a spare that died idle (killed, out of memory)
        return _start()

    def unpack(self, source: Readable, dest: Path, limit: int) -> Unpacked:
        """Like ``unpack.unpack``, in a child process; ``source`` is read to its end."""
        self.expect_pulls()
        with self._changed:
            self._busy += 1
        try:
            return self._unpack(source, dest, limit)
        finally:
            with self._changed:
                self._busy -= 1
                self._changed.notify_all()

    def _unpack(self, source: Readable, dest: Path, limit: int) -> Unpacked:
        child = self._take()
        assert child.stdin is not None and child.stdout is not None
        try:
            header = json.dumps({"dest": str(dest), "limit": limit}).encode() + b"\n"
            try:
                _write_all(child.stdin.fileno(), header)
                while chunk := source.read(CHUNK):
                    _write_all(child.stdin.fileno(), chunk)
            except BrokenPipeError:
                pass  # the child stopped reading: its answer says why
            child.stdin.close()
            out = child.stdout.read()  # ends when the child exits
            child.stdout.close()
            child.wait()
        except BaseException:
            _end(child)
            raise
        return _answer(out, child.returncode)


def unpack_isolated(source: Readable, dest: Path, limit: int) -> Unpacked:
    """Like ``unpack.unpack``, in a child process started for it."""
    return Unpackers(spares=0).unpack(source, dest, limit)


def _start() -> subprocess.Popen[bytes]:
    child = subprocess.Popen(  # stdout: one JSON line, after any traceback
        [sys.executable, "-I", "-m", "crid.image.unpack_worker", str(os.getpid())],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0,
    )
    assert child.stdin is not None
    with contextlib.suppress(OSError):  # a smaller pipe only means more wake-ups
        fcntl.fcntl(child.stdin.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    return child


def _end(child: subprocess.Popen[bytes]) -> None:
    child.kill()
    child.wait()
    for pipe in (child.stdin, child.stdout):
        if pipe is not None:
            pipe.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _answer(out: bytes, returncode: int) -> Unpacked:
    try:
        answer = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise CridError(f"layer unpacker exited with {returncode}: "
                        f"{out.decode(errors='replace')[-500:]}") from None
    if "error" in answer:
        if answer.get("unsafe"):
            raise UnsafeLayer(answer["error"])
        if answer.get("exhausted"):
            raise ResourceExhausted(f"unpacking a layer: {answer['error']}")
        if answer.get("errno") in NO_SPACE:
            raise OSError(answer["errno"], answer["error"])
        raise CridError(f"unpacking a layer: {answer['error']}")
    return Unpacked(answer["diff_id"], answer["size"], answer["inodes"])


def _die_with_parent() -> None:
    """A crid killed mid-pull takes its unpackers along (PR_SET_PDEATHSIG)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def main() -> int:
    parent = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    _die_with_parent()
    if parent and os.getppid() != parent:
        return 1  # the parent died before we could ask to follow it
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    os.umask(0)  # modes come from the layer, exactly
    stdin = sys.stdin.buffer
    # A spare waits here, its limits already set, until a layer is its to unpack.
    line = stdin.readline(MAX_HEADER_BYTES)
    if not line:
        return 0  # closed unused (the daemon stopped)
    try:
        header = json.loads(line)
        dest, limit = Path(str(header["dest"])), header["limit"]
        if not (limit is None or isinstance(limit, int)):
            raise TypeError("limit")
    except (ValueError, KeyError, TypeError) as exc:
        print(json.dumps({"error": f"bad request line: {exc}"}), flush=True)
        return 1
    try:
        result = unpack(stdin, dest, umask_zero=True, limit=limit)
    except UnsafeLayer as exc:
        print(json.dumps({"error": exc.message, "unsafe": True}), flush=True)
        return 1
    except LayerTooBig as exc:
        print(json.dumps({"error": exc.message, "exhausted": True}), flush=True)
        return 1
    except MemoryError:
        print(json.dumps({"error": f"the layer needs more than {MEMORY_LIMIT} bytes of memory "
                          "to unpack (a huge sparse map?)", "unsafe": True}), flush=True)
        return 1
    except OSError as exc:
        print(json.dumps({"error": str(exc), "errno": exc.errno}), flush=True)
        return 1
    # Take everything the parent sends, so it never blocks on a full pipe.
    while stdin.read(CHUNK):
        pass
    print(json.dumps({"diff_id": result.diff_id, "size": result.size,
                      "inodes": result.inodes}), flush=True)
    os.close(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
