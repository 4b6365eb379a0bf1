"""Unpacking in a child process: ``python -m crid.image.unpack_worker DEST``.

Untarring is mostly Python work per entry; done in the daemon it would hold
the GIL against the event loop and against the other layers of the same pull.
A child per layer unpacks on its own core, and keeps the daemon responsive.
The parent pipes the (compressed) layer bytes to the child's stdin as they
arrive from the registry; the child answers one JSON line on stdout:
``{"diff_id", "size", "inodes"}`` or ``{"error", "unsafe"|"exhausted"|"errno"}``
(``errno`` of a failed write: a full disk is raised as that ``OSError`` in the
parent, where the caller knows which dir it fills).

The child's address space is capped (``MEMORY_LIMIT``): tarfile holds a
member's whole sparse map in memory, and a hostile layer could make that
map, or any other structure, as large as it likes. Past the cap the child
fails alone; the daemon only reads its one answer line.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

from crid.image.unpack import CHUNK, LayerTooBig, Readable, Unpacked, UnsafeLayer, unpack

from crid.disk_full import NO_SPACE
from crid.errors import CridError, ResourceExhausted

PIPE_BYTES = 1 << 20
PR_SET_PDEATHSIG = 1
# Address space of one unpacker: an interpreter, a 128 MiB zstd window and
# buffers fit many times over; a hostile sparse map does not.
MEMORY_LIMIT = 1 << 30


def unpack_isolated(source: Readable, dest: Path, limit: int) -> Unpacked:
    """Like ``unpack.unpack``, in a child process; ``source`` is read to its end."""
    child = subprocess.Popen(  # stdout: one JSON line, after any traceback
        [sys.executable, "-I", "-m", "crid.image.unpack_worker", str(dest), str(os.getpid()),
         str(limit)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        with contextlib.suppress(OSError):  # a smaller pipe only means more wake-ups
            fcntl.fcntl(child.stdin.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        try:
            while chunk := source.read(CHUNK):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(child.stdin.fileno(), view):]
        except BrokenPipeError:
            pass  # the child stopped reading: its answer says why
        child.stdin.close()
        out = child.stdout.read()  # ends when the child exits
        child.stdout.close()
        child.wait()
    except BaseException:
        child.kill()
        child.wait()
        raise
    try:
        answer = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise CridError(f"layer unpacker exited with {child.returncode}: "
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
    dest = Path(sys.argv[1])
    parent = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    limit = int(sys.argv[3]) if len(sys.argv) > 3 else None
    _die_with_parent()
    if parent and os.getppid() != parent:
        return 1  # the parent died before we could ask to follow it
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    stdin = sys.stdin.buffer
    os.umask(0)  # modes come from the layer, exactly
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
