"""What each runtime handler can do, asked of its runtime once at start-up.

``RUNTIME features`` prints the runtime-spec's features document (runc and
crid-runtime both do); the CRI wants to know, per handler, whether recursive
read-only mounts work: the runtime must know the ``rro`` mount option and the
kernel must have mount_setattr(2) (Linux 5.12), as containerd decides it.
Kubelet reads this from ``Status`` and refuses pods that need what a handler
lacks; CreateContainer refuses them too, with a message naming the handler.

User namespaces (``hostUsers: false``) need a runtime that makes idmapped
mounts (``linux.mountExtensions.idmap.enabled`` in its features, as
containerd reads it) and a kernel and filesystem that allow them where the
daemon keeps images and volumes: ``idmap_works`` tries it once at start-up
on the root dir (a detached clone idmapped to a throwaway user namespace).
runc 1.1 has no such key, so its handler reports false.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import platform
import re
import subprocess
import time
from collections.abc import Iterable

from crid import logs
from crid.config import Handler
from crid.oci import linux as L

PROBE_SECONDS = 10.0
MOUNT_SETATTR_KERNEL = (5, 12)

log = logs.get("crid.handlers")


@dataclasses.dataclass(frozen=True)
class HandlerFeatures:
    recursive_read_only_mounts: bool = False
    user_namespaces: bool = False


NONE = HandlerFeatures()


def from_document(document: bytes, kernel_release: str, idmap: bool = False) -> HandlerFeatures:
    """The features a runtime's ``features`` output grants on this kernel;
    ``idmap``: whether idmapped mounts work on the root dir's filesystem."""
    try:
        parsed = json.loads(document)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return NONE
    if not isinstance(parsed, dict):
        return NONE
    options = parsed.get("mountOptions")
    rro = isinstance(options, list) and "rro" in options
    linux = parsed.get("linux")
    linux = linux if isinstance(linux, dict) else {}
    spaces = linux.get("namespaces")
    extensions = linux.get("mountExtensions")
    runtime_idmap = isinstance(extensions, dict) and isinstance(extensions.get("idmap"), dict) \
        and extensions["idmap"].get("enabled") is True
    userns = isinstance(spaces, list) and "user" in spaces and runtime_idmap and idmap
    return HandlerFeatures(
        recursive_read_only_mounts=rro and _kernel_at_least(kernel_release, MOUNT_SETATTR_KERNEL),
        user_namespaces=userns)


def idmap_works(path: str) -> bool:
    """Whether a mount of ``path`` can be idmapped here: a detached clone of
    it idmapped to the user namespace of a throwaway ``unshare --user``
    process (critest probes the same way)."""
    sc = L.syscalls()
    try:
        holder = subprocess.Popen(["unshare", "--user", "--map-root-user", "--", "sleep", "5"],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
    except OSError:
        return False
    try:
        own = os.stat("/proc/self/ns/user").st_ino
        for _ in range(2000):
            try:
                if os.stat(f"/proc/{holder.pid}/ns/user").st_ino != own and \
                        os.readlink(f"/proc/{holder.pid}/exe").endswith("/sleep"):
                    break
            except OSError:
                pass
            if holder.poll() is not None:
                return False
            time.sleep(0.001)
        userns = os.open(f"/proc/{holder.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        try:
            tree = sc.open_tree(L.AT_FDCWD, path, L.OPEN_TREE_CLONE | L.OPEN_TREE_CLOEXEC)
            try:
                sc.idmap(tree, userns, recursive=False)
            finally:
                os.close(tree)
        finally:
            os.close(userns)
    except OSError as exc:
        log.info("idmapped mounts do not work here", path=path, error=str(exc))
        return False
    finally:
        holder.kill()
        holder.wait()
    return True


def _kernel_at_least(release: str, wanted: tuple[int, int]) -> bool:
    found = re.match(r"(\d+)\.(\d+)", release)
    return found is not None and (int(found[1]), int(found[2])) >= wanted


async def probe(handler: Handler, kernel_release: str, idmap: bool = False) -> HandlerFeatures:
    """Run the handler's ``features``; a runtime that cannot answer has none."""
    try:
        process = await asyncio.create_subprocess_exec(
            handler.path, "features", stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    except OSError as exc:
        log.warning("runtime handler cannot be run", handler=handler.name, error=str(exc))
        return NONE
    try:
        out, _ = await asyncio.wait_for(process.communicate(), PROBE_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        log.warning("runtime handler's features timed out", handler=handler.name)
        return NONE
    if process.returncode != 0:
        log.warning("runtime handler has no features verb", handler=handler.name,
                    exit_code=process.returncode)
        return NONE
    return from_document(out, kernel_release, idmap)


async def probe_all(handlers: Iterable[Handler], kernel_release: str | None = None,
                    root_dir: str | None = None) -> dict[str, HandlerFeatures]:
    """Every handler's features, asked at once; keyed by handler name.
    ``root_dir``: where idmapped mounts must work for user namespaces."""
    release = kernel_release or platform.release()
    idmap = bool(root_dir) and await asyncio.to_thread(idmap_works, str(root_dir))
    listed = list(handlers)
    found = await asyncio.gather(*(probe(h, release, idmap) for h in listed))
    for handler, features in zip(listed, found, strict=True):
        log.info("runtime handler", handler=handler.name, path=handler.path,
                 recursive_read_only_mounts=features.recursive_read_only_mounts,
                 user_namespaces=features.user_namespaces)
    return {h.name: f for h, f in zip(listed, found, strict=True)}


class Features:
    """Every configured handler's features, asked once by ``probe`` at start-up;
    until then (and for an unknown handler) a handler can do nothing extra."""

    def __init__(self, handlers: Iterable[Handler], default_handler: str,
                 root_dir: str | None = None) -> None:
        self._handlers = tuple(handlers)
        self._default = default_handler
        self._root_dir = root_dir
        self._by_name: dict[str, HandlerFeatures] = {}

    async def probe(self) -> None:
        self._by_name = await probe_all(self._handlers, root_dir=self._root_dir)

    def of(self, handler_name: str) -> HandlerFeatures:
        """What the handler can do; ``""`` is the default handler."""
        return self._by_name.get(handler_name or self._default, NONE)
