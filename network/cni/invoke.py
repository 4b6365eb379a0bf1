"""Running one CNI plugin: find the binary, pass env and config, read the result.

Plugins run as asyncio subprocesses, so a slow plugin holds no thread; each
call has a deadline, past which the plugin's whole process group is killed.
A failing plugin prints a CNI error object
(``{"code": N, "msg": ..., "details": ...}``) on stdout; ``PluginError``
carries that message so the person reading the CRI error sees what the
plugin said, not just an exit code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from crid import logs
from crid.errors import CridError, DeadlineExceeded, FailedPrecondition
from crid.jsontypes import Json

log = logs.get("crid.network")
KILL_WAIT_SECONDS = 5.0


class PluginError(CridError):
    """A plugin failed; ``message`` names the plugin, the command and its error."""

    def __init__(self, plugin: str, command: str, message: str, code: int = 0) -> None:
        super().__init__(f"CNI plugin {plugin} failed on {command}: {message}")
        self.plugin = plugin
        self.command = command
        self.cni_code = code


def find_plugin(kind: str, plugin_dirs: Sequence[str]) -> Path:
    for directory in plugin_dirs:
        candidate = Path(directory) / kind
        if os.access(candidate, os.X_OK) and candidate.is_file():
            return candidate
    raise FailedPrecondition(
        f"CNI plugin {kind!r} not found in {', '.join(plugin_dirs) or '(no plugin dirs)'}"
    )


class PluginRunner:
    """Executes plugin binaries (the seam tests replace)."""

    async def run(self, binary: Path, env: Mapping[str, str], stdin: bytes,
                  timeout: float) -> tuple[int, bytes, bytes]:
        # A group of its own: a plugin that hangs may hang in a child it started
        # (a shell's sleep, an iptables call), which holds the plugin's stdout
        # open; killing the plugin alone would leave that child, and waiting
        # for the pipes to close would hang crid in its turn.
        process = await asyncio.create_subprocess_exec(
            str(binary), env=dict(env),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, start_new_session=True,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(stdin), timeout)
        except BaseException:  # the deadline, or the call cancelled: nothing keeps running
            await _kill_group(process)
            raise
        return process.returncode or 0, out, err


async def _kill_group(process: asyncio.subprocess.Process) -> None:
    """SIGKILL the plugin and every process of its group, then wait for it (bounded:
    a process that left the group may still hold the pipes)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    try:
        await asyncio.wait_for(asyncio.shield(process.wait()), KILL_WAIT_SECONDS)
    except TimeoutError:
        log.warning("a killed CNI plugin's pipes stay open: a process of it left its group",
                    pid=process.pid)


async def invoke(
    runner: PluginRunner,
    plugin_dirs: Sequence[str],
    command: str,
    config: Json,
    env: Mapping[str, str],
    timeout: float,
) -> Json | None:
    """Run ``config['type']`` for ``command``; its parsed result (None if empty)."""
    kind = str(config["type"])
    binary = find_plugin(kind, plugin_dirs)
    full_env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        **env,
        "CNI_COMMAND": command,
        "CNI_PATH": os.pathsep.join(plugin_dirs),
    }
    started = time.monotonic()
    try:
        code, out, err = await runner.run(binary, full_env, json.dumps(config).encode(), timeout)
    except TimeoutError:
        raise DeadlineExceeded(
            f"CNI plugin {kind} did not finish {command} within {timeout:g}s"
        ) from None
    log.debug("CNI plugin ran", plugin=kind, command=command, code=code,
              duration_ms=round((time.monotonic() - started) * 1000, 1))
    return plugin_result(kind, command, code, out, err)


def plugin_result(kind: str, command: str, code: int, out: bytes, err: bytes) -> Json | None:
    """What a plugin's run means: its parsed result (None if empty), or its PluginError."""
    if code != 0:
        raise _plugin_error(kind, command, code, out, err)
    if not out.strip():
        return None
    try:
        result = json.loads(out)
    except (ValueError, RecursionError):  # not UTF-8 or JSON, or nested past the stack
        raise PluginError(kind, command, f"printed a result that is not JSON: {out[:200]!r}") \
            from None
    if not isinstance(result, dict):
        raise PluginError(kind, command, f"printed a result that is not an object: {out[:200]!r}")
    return result


def _plugin_error(kind: str, command: str, code: int, out: bytes, err: bytes) -> PluginError:
    try:
        reported = json.loads(out)
    except (ValueError, RecursionError):
        reported = None
    if isinstance(reported, dict) and reported.get("msg"):
        message = str(reported["msg"])
        if reported.get("details"):
            message += f" ({reported['details']})"
        number = reported.get("code")
        return PluginError(kind, command, message, number if type(number) is int else 0)
    text = (err or out).decode(errors="replace").strip()[:500]
    return PluginError(kind, command, f"exited with {code}: {text or 'no output'}")
