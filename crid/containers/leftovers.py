"""What a create that did not finish leaves behind, and removing it.

A runtime that fails part-way may leave its state and the container's cgroup
(even a process in it); CreateContainer undoes that. A crid killed in the
middle of a create leaves a bundle (mounts included), a writable layer and
perhaps a container that conmon went on to create, with no row to find them
by: at start-up, before it serves, crid removes those too.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

from crid import logs
from crid.containers import rootfs
from crid.containers.context import Containers
from crid.containers.monitor import Monitor
from crid.errors import CridError
from crid.oci.cgroups.pod import Cgroup

log = logs.get("crid.containers")


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


async def remove_unrecorded(ctx: Containers) -> None:
    """Remove bundles and writable layers no container row names."""
    known = {c.id for c in ctx.records.all()}
    for bundle in _entries(ctx.bundles_dir):
        if bundle.name in known:
            continue
        log.warning("removing what an unfinished create left", container_id=bundle.name)
        # Every handler's runtime: the row that named the one is what is missing.
        await discard_runtime([ctx.monitor(h.name) for h in ctx.config.handlers],
                              bundle.name, spec_cgroups_path(bundle))
        await asyncio.to_thread(rootfs.remove_bundle, bundle)
    for layer in _entries(ctx.layers_dir):
        if layer.name not in known:
            await asyncio.to_thread(rootfs.remove_layer, layer)


def _entries(directory: Path) -> list[Path]:
    return sorted(directory.iterdir()) if directory.is_dir() else []


def spec_cgroups_path(bundle: Path) -> str:
    try:
        return str(json.loads((bundle / "config.json").read_text())["linux"]["cgroupsPath"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""  # the spec was not written yet: no runtime saw this container
