"""What every container call shares: records, monitors, locks, exit watching.

A container's exit is noticed through a pidfd on its conmon: conmon exits
right after it writes the exit code, so the pidfd turning readable is the
moment to read it. conmon daemonises; crid, a child subreaper, adopts it and
reaps it through that pidfd (``crid.reaper``). A pidfd works the same on a
conmon an earlier crid started (then not this one's child to reap).
Exits that happened while crid was down are found in the exit files when it
starts again.

Recording an exit happens in loop callbacks (the pidfd turning readable) and
in the sync paths that read a container (find, list, status), so it uses
``Records.update_soon``: the copy says EXITED at once and the row follows on
the store's writer. The exit file stays until RemoveContainer has deleted
the row, so a crash before the row is written loses nothing: ``recover``
reads the file again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from cri_api.v1 import api_pb2

from crid import logs, private
from crid.cdi.registry import Registry as CdiRegistry
from crid.clock import Clock
from crid.config import Config, Handler
from crid.containers import monitor as monitors
from crid.containers.exec_server import ExecServer
from crid.containers.monitor import Monitor, RuntimeVerbs
from crid.containers.records import (
    CREATED,
    EXITED,
    RUNNING,
    UNKNOWN,
    Container,
    ContainerRecords,
)
from crid.errors import InvalidArgument, NotFound
from crid.handler_features import Features
from crid.image.store import ImageStore
from crid.lifecycle_hooks import NO_HOOKS, LifecycleHooks
from crid.listing_cache import ListingCache
from crid.reaper import reap_pidfd

log = logs.get("crid.containers")

COMPLETED, ERROR, OOM_KILLED = "Completed", "Error", "OOMKilled"

StateListener = Callable[[Container], None]
#: How a handler's runtime verbs are run, given the handler and its --root.
VerbsFor = Callable[[Handler, Path], RuntimeVerbs]


def oom_kill_counter(records: ContainerRecords, count: Callable[[], object]) -> StateListener:
    """A listener that counts each container's OOM kill once: refresh records an
    exit once, and RemoveContainer reports the same record again after deleting
    the row, which is not a second kill."""
    def listener(container: Container) -> None:
        if container.reason == OOM_KILLED and records.get(container.id):
            count()
    return listener


class Containers:
    def __init__(self, config: Config, records: ContainerRecords, clock: Clock,
                 images: ImageStore, features: Features,
                 verbs_for: VerbsFor | None = None) -> None:
        self.config = config
        # None: every handler's verbs as its runtime's command line.
        self.verbs_for = verbs_for
        self.clock = clock
        self.records = records
        self.images = images
        self.features = features
        # Extensions (NRI) the composition root plugs in; none until then.
        self.hooks: LifecycleHooks = NO_HOOKS
        # ExecSync's fork server for the `crid` handler, when the root made one.
        self.exec_server: ExecServer | None = None
        self.cdi = CdiRegistry(config.cdi_spec_dirs)  # reads nothing until asked
        self.layers_dir = Path(config.root) / "containers"
        self.bundles_dir = Path(config.runroot) / "containers"
        self.exits_dir = Path(config.runroot) / "exits"
        self.listeners: list[StateListener] = []
        self._monitors: dict[str, Monitor] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._watched: dict[str, int] = {}  # container id -> pidfd of its conmon
        self._exited: dict[str, asyncio.Event] = {}
        # ListContainers' item per container, with the record it was made from.
        self.listed: dict[str, tuple[Container, api_pb2.Container]] = {}
        # ListContainers' whole responses, stamped with the generations they were
        # made at (the table's, then the exit watches').
        self.listings: ListingCache[api_pb2.ListContainersResponse] = ListingCache()
        self.watch_generation = 0

    # --- lookups ------------------------------------------------------------

    def monitor(self, handler_name: str) -> Monitor:
        handler = self.config.handler(handler_name)
        if handler is None:
            raise NotFound(f"runtime handler {handler_name!r} is not configured")
        if handler.name not in self._monitors:
            root = self.runtime_root(handler)
            self._monitors[handler.name] = Monitor(
                handler, root, self.exits_dir, log_level=self.config.log_level,
                verbs=self.verbs_for(handler, root) if self.verbs_for else None)
        return self._monitors[handler.name]

    def runtime_root(self, handler: Handler) -> Path:
        """The handler's runtime state dir (its ``--root``)."""
        return Path(handler.root) if handler.root else (
            Path(self.config.runroot) / "runtimes" / handler.name)

    def find(self, container_id: str) -> Container | None:
        """The container with this id or unique id prefix, its exit read if it ended."""
        if not container_id:
            raise InvalidArgument("container_id is required")
        found = self.records.get(container_id)
        if found is None:
            matches = self.records.by_prefix(container_id)
            if len(matches) > 1:
                raise InvalidArgument(f"container id prefix {container_id!r} is ambiguous")
            found = matches[0] if matches else None
        return self.refresh(found) if found else None

    def require(self, container_id: str) -> Container:
        found = self.find(container_id)
        if found is None:
            raise NotFound(f"container {container_id!r} not found")
        return found

    def lock(self, container_id: str) -> asyncio.Lock:
        return self._locks.setdefault(container_id, asyncio.Lock())

    def bundle(self, container_id: str) -> Path:
        return self.bundles_dir / container_id

    def layer_dir(self, container_id: str) -> Path:
        return self.layers_dir / container_id

    # --- state changes --------------------------------------------------------

    def changed(self, container: Container | None) -> Container | None:
        """Tell listeners (events, metrics) about a container's new state."""
        if container is not None:
            for listener in self.listeners:
                listener(container)
        return container

    def refresh(self, container: Container) -> Container:
        """Record an exit conmon wrote but crid has not seen yet."""
        if container.state not in (CREATED, RUNNING):
            return container
        monitor = self.monitor(container.handler)
        code = monitor.exit_code(container.id)
        if code is None:
            return container
        oom = monitors.oom_killed(Path(container.bundle))
        reason = OOM_KILLED if oom else COMPLETED if code == 0 else ERROR
        updated = self.records.update_soon(
            container.id, state=EXITED, exit_code=code, reason=reason,
            finished_ns=monitor.exited_at_ns(container.id) or self.clock.now_ns(),
        )
        if updated is None:
            return container
        log.info("container exited", container_id=container.id, exit_code=code, reason=reason)
        self._exited.setdefault(container.id, asyncio.Event()).set()
        self.changed(updated)
        return updated

    def exit_written(self, container_id: str) -> bool:
        """Whether conmon wrote the container's exit file (which ``refresh`` would
        record); one stat, no state touched, so any thread may ask."""
        return (self.exits_dir / container_id).exists()

    def settled(self, container: Container) -> bool:
        """Whether ``current`` is ``container`` itself until the table changes: its
        exit is either recorded already or will be by the watch on its conmon."""
        return container.id in self._watched or container.state not in (CREATED, RUNNING)

    def current(self, container: Container) -> Container:
        """``container`` as list calls report it: a container whose conmon is watched
        is refreshed by the watch the moment conmon exits, so only the unwatched
        (not started yet, or found after a restart) need their exit file read."""
        return container if container.id in self._watched else self.refresh(container)

    # --- exit watching --------------------------------------------------------

    def watch(self, container: Container) -> None:
        """Call ``refresh`` when the container's conmon exits."""
        if container.id in self._watched or not container.monitor_pid:
            return
        try:
            pidfd = os.pidfd_open(container.monitor_pid)
        except ProcessLookupError:
            self._monitor_gone(container)
            return
        self._watched[container.id] = pidfd
        self.watch_generation += 1
        self._exited.setdefault(container.id, asyncio.Event())
        asyncio.get_running_loop().add_reader(pidfd, self._on_monitor_exit, container.id)

    def unwatch(self, container_id: str) -> None:
        self._close_watch(container_id)
        self._exited.pop(container_id, None)
        self._locks.pop(container_id, None)

    async def wait_exited(self, container_id: str, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the container to be recorded as exited."""
        event = self._exited.setdefault(container_id, asyncio.Event())
        current = self.records.get(container_id)
        if current is None or self.refresh(current).state not in (CREATED, RUNNING):
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)
        return event.is_set()

    def _close_watch(self, container_id: str) -> None:
        pidfd = self._watched.pop(container_id, None)
        if pidfd is not None:
            asyncio.get_running_loop().remove_reader(pidfd)
            reap_pidfd(pidfd)  # exited, or when it exits later the sweep reaps it
            os.close(pidfd)
            self.watch_generation += 1

    def _on_monitor_exit(self, container_id: str) -> None:
        self._close_watch(container_id)
        container = self.records.get(container_id)
        if container is None:
            return
        if self.refresh(container).state in (CREATED, RUNNING):
            self._monitor_gone(container)

    def _monitor_gone(self, container: Container) -> None:
        """conmon is gone without an exit file: the container's fate is unknown."""
        if self.refresh(container).state not in (CREATED, RUNNING):
            return
        log.warning("container monitor vanished without an exit code",
                    container_id=container.id, monitor_pid=container.monitor_pid)
        updated = self.records.update_soon(
            container.id, state=UNKNOWN, reason=ERROR, exit_code=255,
            message="the container's monitor (conmon) exited without recording an exit code",
            finished_ns=self.clock.now_ns())
        self._exited.setdefault(container.id, asyncio.Event()).set()
        self.changed(updated)

    def recover(self) -> None:
        """After a (re)start: read exits that happened meanwhile, watch the living.
        The dirs of bundles and exit files are root's (exit files are read as
        the truth, and conmon writes them as root: no one may plant one)."""
        private.directory(self.bundles_dir)
        private.directory(self.exits_dir)
        for container in self.records.all():
            current = self.refresh(container)
            if current.state not in (CREATED, RUNNING):
                continue
            if monitors.monitor_alive(current.monitor_pid, current.id):
                self.watch(current)
            else:
                self._monitor_gone(current)
