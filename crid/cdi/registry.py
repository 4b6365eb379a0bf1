"""The CDI devices of this node: spec files in the spec dirs, kept current.

The dirs are read in order (``/etc/cdi`` then ``/var/run/cdi`` by default);
each ``*.json`` and ``*.yaml`` file in them (not below) is a spec. A device
found in a later dir overrides one of the same name in an earlier dir; the
same device in two files of one dir is ambiguous and neither is used. A
broken file gives no devices; its problem is kept and shown when someone
asks for a device that is not there, so the operator sees why.

The stdlib has no inotify, so there is no watcher thread: each lookup stats
the dirs and the files in them and re-reads only what changed (a dir's
mtime changes when a file is added, removed or renamed into it; a file's
inode, size, mtime or ctime when it is rewritten). That costs a few stats
per create that asks for CDI devices, and nothing for the others.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from crid import logs
from crid.cdi import edits as cdi_edits
from crid.cdi import names
from crid.cdi.spec import SUFFIXES, Edits, Spec, SpecError, read
from crid.errors import InvalidArgument
from crid.oci.runtime_spec import Spec as RuntimeSpec

log = logs.get("crid.cdi")

MAX_FILES_PER_DIR = 1024

Stamp = tuple[int, int, int, int, int]  # dev, inode, size, mtime, ctime (ns)


@dataclass(frozen=True)
class _Loaded:
    stamp: Stamp
    spec: Spec | None
    error: str = ""


@dataclass(frozen=True)
class Device:
    name: str  # qualified
    spec: Spec
    edits: Edits


class Registry:
    """Lookups of CDI devices by qualified name; thread-safe (creates run in threads)."""

    def __init__(self, spec_dirs: Sequence[str]) -> None:
        self.spec_dirs = tuple(os.path.normpath(d) for d in spec_dirs)
        self._lock = threading.Lock()
        self._dir_stamps: dict[str, Stamp | None] = {}
        self._listing: dict[str, list[str]] = {}  # dir -> its spec files' paths
        self._dir_errors: dict[str, str] = {}
        self._files: dict[str, _Loaded] = {}
        self._devices: dict[str, Device] = {}
        self._conflicts: dict[str, list[str]] = {}  # device -> the files that both have it

    # --- the entry the create path (and NRI adjustments) use -----------------------

    def apply(self, spec: RuntimeSpec, device_names: Sequence[str]) -> None:
        """Inject the named devices into the runtime-spec ``spec`` (in place).

        Raises InvalidArgument, leaving ``spec`` unchanged, when a name is not
        qualified, a device is unknown or ambiguous, or a host node is missing.
        """
        if device_names:
            cdi_edits.apply(spec, self.resolve(device_names))

    def resolve(self, device_names: Sequence[str]) -> list[tuple[str, Edits]]:
        """The edits the devices ask for, in order: a spec's own edits once, before
        the first of its devices; then each device's."""
        wanted = list(dict.fromkeys(device_names))
        for name in wanted:
            names.parse(name)
        with self._lock:
            self._refresh()
            missing = [name for name in wanted if name not in self._devices]
            if missing:
                raise InvalidArgument(self._unresolved(missing))
            found = [self._devices[name] for name in wanted]
        out: list[tuple[str, Edits]] = []
        seen: set[str] = set()
        for device in found:
            if device.spec.path not in seen:
                seen.add(device.spec.path)
                if not device.spec.edits.empty():
                    out.append((f"{device.name} (edits of {device.spec.path})",
                                device.spec.edits))
            out.append((device.name, device.edits))
        return out

    def devices(self) -> list[str]:
        """Every usable device's qualified name, sorted."""
        with self._lock:
            self._refresh()
            return sorted(self._devices)

    # --- keeping current ------------------------------------------------------------

    def _refresh(self) -> None:
        changed = False
        for directory in self.spec_dirs:
            stamp = _stamp(directory)
            if directory in self._dir_stamps and stamp == self._dir_stamps[directory]:
                continue
            self._dir_stamps[directory] = stamp
            self._listing[directory] = self._list(directory) if stamp else []
            changed = True
        listed = [p for d in self.spec_dirs for p in self._listing[d]]
        for path in set(self._files) - set(listed):
            del self._files[path]
            changed = True
        for priority, directory in enumerate(self.spec_dirs):
            for path in self._listing[directory]:
                changed |= self._load(path, priority)
        if changed:
            self._index()

    def _list(self, directory: str) -> list[str]:
        self._dir_errors.pop(directory, None)
        try:
            entries = sorted(e.name for e in os.scandir(directory)
                             if e.name.endswith(SUFFIXES) and not e.is_dir())
        except OSError as exc:
            self._dir_errors[directory] = f"cannot list {directory}: {exc.strerror}"
            return []
        if len(entries) > MAX_FILES_PER_DIR:
            self._dir_errors[directory] = (f"{directory} holds {len(entries)} spec files; "
                                           f"only the first {MAX_FILES_PER_DIR} are read")
            entries = entries[:MAX_FILES_PER_DIR]
        return [os.path.join(directory, name) for name in entries]

    def _load(self, path: str, priority: int) -> bool:
        """(Re-)read ``path`` when it changed; whether it did."""
        stamp = _stamp(path)
        old = self._files.get(path)
        if old is not None and old.stamp == stamp and (
                old.spec is None or old.spec.priority == priority):
            return False
        if stamp is None:  # gone between the listing and now
            self._files.pop(path, None)
            return old is not None
        try:
            loaded = _Loaded(stamp, read(path, priority))
        except SpecError as exc:
            loaded = _Loaded(stamp, None, str(exc))
        except OSError as exc:
            loaded = _Loaded(stamp, None, f"{path}: cannot read: {exc.strerror}")
        if loaded.error:
            log.warning("CDI spec file ignored", error=loaded.error)
        else:
            log.info("CDI spec file loaded", path=path, kind=loaded.spec and loaded.spec.kind)
        self._files[path] = loaded
        return True

    def _index(self) -> None:
        devices: dict[str, Device] = {}
        conflicts: dict[str, list[str]] = {}
        for path in sorted(self._files, key=self._order):
            spec = self._files[path].spec
            if spec is None:
                continue
            for device_name, device_edits in spec.devices.items():
                name = f"{spec.kind}={device_name}"
                other = devices.get(name)
                if other is not None and other.spec.priority == spec.priority:
                    conflicts.setdefault(name, [other.spec.path]).append(spec.path)
                else:  # a later dir's wins, even over a tie in an earlier dir
                    conflicts.pop(name, None)
                devices[name] = Device(name, spec, device_edits)
        for name in conflicts:
            del devices[name]
        self._devices, self._conflicts = devices, conflicts

    def _order(self, path: str) -> tuple[int, str]:
        spec = self._files[path].spec
        return (spec.priority if spec else -1, path)

    def _unresolved(self, missing: list[str]) -> str:
        parts = []
        for name in missing:
            if name in self._conflicts:
                parts.append(f"CDI device {name} is ambiguous: defined in both "
                             f"{' and '.join(self._conflicts[name])}")
            else:
                parts.append(f"unknown CDI device {name}")
        text = "; ".join(parts) + f" (CDI spec dirs: {', '.join(self.spec_dirs)})"
        broken = [loaded.error for loaded in self._files.values() if loaded.error]
        broken += list(self._dir_errors.values())
        if broken:
            text += "; spec files that could not be used: " + "; ".join(sorted(broken))
        return text


def _stamp(path: str) -> Stamp | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
