"""Finding the processes to kill: one daemon's conmons, and its runtime mid-create.

Found by scanning /proc for command lines that name the daemon's own state
dir, so other daemons running on the machine at the same time are never hit.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

RUNTIME_POLL = 0.002


def command_lines() -> Iterator[tuple[int, list[str]]]:
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile
        if raw:
            yield int(entry.name), raw.decode(errors="replace").rstrip("\0").split("\0")


def _after(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1] if flag in argv[:-1] else ""


def conmons(runroot: Path) -> dict[int, str]:
    """pid -> container id of every conmon whose bundle is under ``runroot``."""
    bundles = f"{runroot}/containers/"
    return {pid: argv[argv.index("-c") + 1] for pid, argv in command_lines()
            if argv[0].endswith("conmon") and _after(argv, "-b").startswith(bundles)
            and "-c" in argv[:-1]}


def runtime_creates(runroot: Path) -> list[int]:
    """pids of ``crid-runtime ... create`` processes conmon started for a bundle
    under ``runroot``.

    The runtime forks children with its command line: a first child, then
    the container's init, which waits for ``start`` in the container's PID
    namespace, reparented to conmon once the first child exits. Killing init
    kills a created container, not a runtime, and this kill mode is the
    runtime's (``e2e/faults/test_runtime_killed.py`` kills the first child and
    init too). What is left: in our PID namespace, and conmon's child."""
    bundles = f"{runroot}/containers/"
    lines = dict(command_lines())
    return [pid for pid, argv in lines.items()
            if any(a.endswith("crid-runtime") for a in argv[:3]) and "create" in argv
            and any(a.startswith(bundles) for a in argv)
            and lines.get(_parent(pid), [""])[0].endswith("conmon")
            and _in_our_pid_namespace(pid)]


def _in_our_pid_namespace(pid: int) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid") == os.readlink("/proc/self/ns/pid")
    except OSError:
        return False


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def kill_conmon(runroot: Path, rng: random.Random,
                before: Callable[[str], None]) -> tuple[int, str] | None:
    """SIGKILL one of the daemon's conmons, chosen by ``rng``; (pid, container id).
    ``before`` is told the container id first: the kill's effects may come at once."""
    found = sorted(conmons(runroot).items(), key=lambda item: item[1])
    if not found:
        return None
    pid, container_id = rng.choice(found)
    before(container_id)
    _kill(pid)
    return pid, container_id


def kill_runtime_create(runroot: Path, within: float,
                        before: Callable[[], None]) -> int | None:
    """Wait up to ``within`` seconds for a ``crid-runtime create`` and SIGKILL it,
    calling ``before`` just before."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for pid in runtime_creates(runroot):
            before()
            _kill(pid)
            return pid
        time.sleep(RUNTIME_POLL)
    return None


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it finished first
        os.kill(pid, signal.SIGKILL)
