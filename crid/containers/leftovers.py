"""What a create that did not finish leaves behind, and removing it.

A runtime that fails part-way may leave its state and the container's cgroup
(even a process in it); CreateContainer undoes that. A crid killed in the
middle of a create leaves a bundle (mounts included), a writable layer and
perhaps a container that conmon went on to create (and whose exit that conmon
records once it is killed), with no row to find them by: at start-up, before
it serves, crid removes those too.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from pathlib import Path

from crid import logs
from crid.containers import rootfs
from crid.containers.context import Containers
from crid.containers.monitor import Monitor
from crid.errors import CridError
from crid.oci.cgroups.pod import Cgroup
from crid.oci.state import read_proc_stat, stat_state

log = logs.get("crid.containers")
CONMON_EXIT_WAIT = 2.0  # seconds; conmon writes the exit file as soon as it reaps


async def discard_runtime(monitors: Sequence[Monitor], container_id: str,
                          cgroups_path: str) -> None:
    """The state of the container in each runtime, then its cgroup, go. Failing to is
    logged, never raised: callers are already reporting (or recovering from) a failure."""
    try:
        for monitor in monitors:
            await monitor.delete(container_id, force=True)
        if cgroups_path:
            await asyncio.to_thread(Cgroup(cgroups_path).kill_and_remove)
    except (CridError, OSError) as exc:  # RuntimeFailed is a CridError
        log.warning("could not undo a failed create", container_id=container_id,
                    error=str(exc))


async def forget_exit(monitor: Monitor, bundle: Path, container_id: str) -> None:
    """The last undo of a failed create, after ``discard_runtime``: its conmon
    records the exit of the container just killed; let it, then remove that
    exit file (removed before, it would be written again for no row)."""
    await asyncio.to_thread(_wait_gone, _conmon_pid(bundle), CONMON_EXIT_WAIT)
    monitor.forget(container_id)


async def remove_unrecorded(ctx: Containers) -> None:
    """Remove bundles, writable layers and exit files no container row names."""
    known = {c.id for c in ctx.records.all()}
    for bundle in _entries(ctx.bundles_dir):
        if bundle.name in known:
            continue
        log.warning("removing what an unfinished create left", container_id=bundle.name)
        conmon = _conmon_pid(bundle)
        # Every handler's runtime: the row that named the one is what is missing.
        await discard_runtime([ctx.monitor(h.name) for h in ctx.config.handlers],
                              bundle.name, spec_cgroups_path(bundle))
        # Its conmon records the exit of the container just killed: let it, so
        # the exit file is there to remove below.
        await asyncio.to_thread(_wait_gone, conmon, CONMON_EXIT_WAIT)
        await asyncio.to_thread(rootfs.remove_bundle, bundle)
    for layer in _entries(ctx.layers_dir):
        if layer.name not in known:
            await asyncio.to_thread(rootfs.remove_layer, layer)
    # Those conmons' exit files, and one a RemoveContainer cut off between the
    # row and the file left (the row goes first).
    for exit_file in _entries(ctx.exits_dir):
        if exit_file.name not in known:
            exit_file.unlink(missing_ok=True)


def _entries(directory: Path) -> list[Path]:
    return sorted(directory.iterdir()) if directory.is_dir() else []


def _conmon_pid(bundle: Path) -> int:
    try:
        return int((bundle / "conmon.pid").read_text().strip())
    except (OSError, ValueError):
        return 0  # conmon never got as far


def _wait_gone(pid: int, within: float) -> None:
    """Until ``pid`` has exited (or is a zombie) or ``within`` seconds have passed."""
    deadline = time.monotonic() + within
    while pid > 0 and time.monotonic() < deadline:
        stat = read_proc_stat(pid)
        if stat is None or stat_state(stat) == "Z":
            return
        time.sleep(0.01)


def spec_cgroups_path(bundle: Path) -> str:
    try:
        return str(json.loads((bundle / "config.json").read_text())["linux"]["cgroupsPath"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""  # the spec was not written yet: no runtime saw this container
