"""What each runtime handler can do, asked of its runtime once at start-up.

``RUNTIME features`` prints the runtime-spec's features document (runc and
crid-runtime both do); the CRI wants to know, per handler, whether recursive
read-only mounts work: the runtime must know the ``rro`` mount option and the
kernel must have mount_setattr(2) (Linux 5.12), as containerd decides it.
Kubelet reads this from ``Status`` and refuses pods that need what a handler
lacks; CreateContainer refuses them too, with a message naming the handler.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import platform
import re
from collections.abc import Iterable

from crid import logs
from crid.config import Handler

PROBE_SECONDS = 10.0
MOUNT_SETATTR_KERNEL = (5, 12)

log = logs.get("crid.handlers")


@dataclasses.dataclass(frozen=True)
class HandlerFeatures:
    recursive_read_only_mounts: bool = False


NONE = HandlerFeatures()


def from_document(document: bytes, kernel_release: str) -> HandlerFeatures:
    """The features a runtime's ``features`` output grants on this kernel."""
    try:
        parsed = json.loads(document)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return NONE
    options = parsed.get("mountOptions") if isinstance(parsed, dict) else None
    rro = isinstance(options, list) and "rro" in options
    return HandlerFeatures(recursive_read_only_mounts=rro and _kernel_at_least(
        kernel_release, MOUNT_SETATTR_KERNEL))


def _kernel_at_least(release: str, wanted: tuple[int, int]) -> bool:
    found = re.match(r"(\d+)\.(\d+)", release)
    return found is not None and (int(found[1]), int(found[2])) >= wanted


async def probe(handler: Handler, kernel_release: str) -> HandlerFeatures:
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
    return from_document(out, kernel_release)


async def probe_all(handlers: Iterable[Handler],
                    kernel_release: str | None = None) -> dict[str, HandlerFeatures]:
    """Every handler's features, asked at once; keyed by handler name."""
    release = kernel_release or platform.release()
    listed = list(handlers)
    found = await asyncio.gather(*(probe(h, release) for h in listed))
    for handler, features in zip(listed, found, strict=True):
        log.info("runtime handler", handler=handler.name, path=handler.path,
                 recursive_read_only_mounts=features.recursive_read_only_mounts)
    return {h.name: f for h, f in zip(listed, found, strict=True)}
