"""Containers: their files, mounts, monitors and exits against the rows.

- a bundle (``<runroot>/containers/<id>``, the rootfs overlay mounted in it)
  or a writable layer (``<root>/containers/<id>``) with no row; a mount
  below either with no row;
- a conmon whose ``--exit-dir`` is this runroot's and whose container has
  no row; a created or running row whose conmon is gone without an exit
  file; an exit file conmon wrote that the row does not show yet, or one
  with no row at all;
- a created or running row whose bundle or writable layer is gone.

Repairs are the daemon's: ``discard_runtime`` and ``rootfs.remove_bundle``
/ ``remove_layer`` (what start-up does for an unfinished create), and the
row updates ``Containers.refresh`` / ``_monitor_gone`` make, written to the
store (the daemon is stopped while repairing).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from crid.check.findings import Finding
from crid.check.view import Container, View, writable
from crid.containers import monitor as monitors
from crid.containers import rootfs
from crid.containers.context import COMPLETED, ERROR, OOM_KILLED
from crid.containers.leftovers import discard_runtime, spec_cgroups_path
from crid.containers.monitor import Monitor
from crid.containers.records import CREATED, EXITED, RUNNING, UNKNOWN
from crid.oci.spec.mounts import parse_mountinfo

LIVE = (CREATED, RUNNING)


def find(view: View) -> list[Finding]:
    bundles = view.runroot / "containers"
    layers = view.root / "containers"
    exits = view.runroot / "exits"
    known = view.containers
    found: list[Finding] = []
    for pid, container_id in monitors.conmons_writing_to(exits):
        if container_id not in known:
            found.append(Finding("conmon-without-container", f"pid {pid}",
                                 f"conmon of {container_id}, which has no row",
                                 _killer(pid, container_id), "killed it"))
    for point in _mounts_below(bundles, layers):
        owner = Path(point).relative_to(bundles if point.startswith(str(bundles)) else layers)
        if owner.parts[0] not in known:
            found.append(Finding("mount-without-container", point, "no container row",
                                 functools.partial(rootfs.unmount, Path(point)), "unmounted it"))
    for bundle in _entries(bundles):
        if bundle.name not in known:
            found.append(Finding("bundle-without-container", str(bundle), "no container row",
                                 _bundle_remover(view, bundle),
                                 "deleted its runtime state and removed the bundle"))
    for layer in _entries(layers):
        if layer.name not in known:
            found.append(Finding("layer-without-container", str(layer), "no container row",
                                 functools.partial(rootfs.remove_layer, layer),
                                 "removed the writable layer"))
    for exit_file in _entries(exits):
        if exit_file.name not in known:
            found.append(Finding("exit-file-without-container", str(exit_file),
                                 "no container row",
                                 functools.partial(exit_file.unlink, missing_ok=True),
                                 "removed it"))
    for container in known.values():
        found += _row(view, container)
    return found


def _row(view: View, container: Container) -> list[Finding]:
    if container.state not in LIVE:
        return []
    monitor = _monitor(view, container.handler)
    code = monitor.exit_code(container.id)
    if code is not None:
        return [Finding("exit-not-recorded", container.id,
                        f"conmon recorded exit code {code}; the row says {container.state}",
                        _recorder(view, container, monitor, code), "recorded the exit")]
    found = []
    missing = [p for p in (container.bundle, container.layer_dir) if not Path(p).is_dir()]
    if missing:
        found.append(Finding("container-files-missing", container.id,
                             f"{container.state} but gone: {', '.join(missing)}",
                             _marker(view, container.id, "its bundle or writable layer is gone"),
                             "marked it unknown"))
    elif (not monitors.monitor_alive(container.monitor_pid, container.id)
          # conmon writes the exit file, then exits: look again after seeing it gone.
          and monitor.exit_code(container.id) is None):
        found.append(Finding(
            "monitor-gone", container.id,
            f"{container.state} but its conmon (pid {container.monitor_pid}) is gone "
            "without an exit file",
            _marker(view, container.id,
                    "the container's monitor (conmon) exited without recording an exit code"),
            "marked it unknown"))
    return found


def _monitor(view: View, handler_name: str) -> Monitor:
    handler = view.config.handler(handler_name)
    if handler is None:  # a handler no longer configured: its exits are still read
        handler = view.config.handlers[0]
    root = Path(handler.root) if handler.root else view.runroot / "runtimes" / handler.name
    return Monitor(handler, root, view.runroot / "exits")


def _recorder(view: View, container: Container, monitor: Monitor, code: int
              ) -> Callable[[], None]:
    def repair() -> None:
        oom = monitors.oom_killed(Path(container.bundle))
        reason = OOM_KILLED if oom else COMPLETED if code == 0 else ERROR
        _update(view, container.id, state=EXITED, exit_code=code, reason=reason,
                finished_ns=monitor.exited_at_ns(container.id) or time.time_ns())
    return repair


def _marker(view: View, container_id: str, message: str) -> Callable[[], None]:
    return lambda: _update(view, container_id, state=UNKNOWN, reason=ERROR, exit_code=255,
                           message=message, finished_ns=time.time_ns())


def _update(view: View, container_id: str, **fields: object) -> None:
    columns = ", ".join(f"{name} = ?" for name in fields)
    db = writable(view)
    try:
        db.execute(f"UPDATE containers SET {columns} WHERE id = ? AND state IN (?, ?)",
                   (*fields.values(), container_id, *LIVE))
    finally:
        db.close()


def _bundle_remover(view: View, bundle: Path) -> Callable[[], None]:
    def repair() -> None:
        monitors_ = [_monitor(view, h.name) for h in view.config.handlers]
        asyncio.run(discard_runtime(monitors_, bundle.name, spec_cgroups_path(bundle)))
        rootfs.remove_bundle(bundle)
    return repair


def _killer(pid: int, container_id: str) -> Callable[[], None]:
    def repair() -> None:
        # Still that conmon (root's, that container's), not a reused pid.
        with contextlib.suppress(OSError):
            if os.stat(f"/proc/{pid}").st_uid == 0 and monitors.monitor_alive(pid, container_id):
                os.kill(pid, signal.SIGKILL)
    return repair


def _mounts_below(*dirs: Path) -> list[str]:
    """Mount points strictly below any of ``dirs``, deepest first."""
    prefixes = tuple(str(d) + "/" for d in dirs)
    points = {m.mount_point for m in parse_mountinfo(Path("/proc/self/mountinfo").read_text())}
    return sorted((p for p in points if p.startswith(prefixes)), key=len, reverse=True)


def _entries(directory: Path) -> list[Path]:
    return sorted(directory.iterdir()) if directory.is_dir() else []
