"""OCI hooks: run each with the state JSON on stdin, its args and env, and its
timeout; a failing hook fails the stage except poststart/poststop (warned).

The daemon runs poststart and poststop in-process (``start`` and ``delete``
on a worker thread): it passes a ``deadline`` that bounds every hook,
whatever timeout the spec gives (none means none), and ``warn`` to log."""

from __future__ import annotations

import sys

from crid.oci import jsonc
from crid.oci.errors import CridError

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from collections.abc import Callable

    from crid.oci.runtime_spec import HookName, Spec, State


_FATAL = {"prestart", "createRuntime", "createContainer", "startContainer"}


def run(cfg: Spec, stage: HookName, state: State, *, deadline: float | None = None,
        warn: Callable[[str], None] | None = None) -> None:
    """Run the stage's hooks; ``deadline`` (``time.monotonic``) caps each one's
    timeout, ``warn`` reports a non-fatal failure (default: stderr)."""
    hooks = (cfg.get("hooks") or {}).get(stage) or []
    if not hooks:
        return
    import subprocess

    payload = jsonc.dumps(state).encode()
    for h in hooks:
        args = h.get("args") or [h["path"]]
        env = dict(e.split("=", 1) for e in h.get("env") or [] if "=" in e)
        timeout: float | None = h.get("timeout")
        if deadline is not None:
            import time

            left = max(deadline - time.monotonic(), 0.0)
            timeout = left if timeout is None else min(timeout, left)
        try:
            proc = subprocess.run(
                args, executable=h["path"], input=payload, env=env,
                capture_output=True, timeout=timeout,
            )
            err = None if proc.returncode == 0 else (
                f"exit status {proc.returncode}: {proc.stderr.decode(errors='replace').strip()}")
        except subprocess.TimeoutExpired:
            err = f"timed out after {timeout}s"
        except OSError as e:
            err = str(e)
        if err is not None:
            msg = f"{stage} hook {h['path']} failed: {err}"
            if stage in _FATAL:
                raise CridError(msg)
            if warn is None:
                sys.stderr.write(f"crid-runtime: warning: {msg}\n")
            else:
                warn(msg)
