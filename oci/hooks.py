"""OCI hooks: run each with the state JSON on stdin, its args and env, and its
timeout; a failing hook fails the stage except poststart/poststop (warned)."""

from __future__ import annotations

import sys

from crid.oci import jsonc
from crid.oci.errors import CridError

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from crid.oci.runtime_spec import HookName, Spec, State


_FATAL = {"prestart", "createRuntime", "createContainer", "startContainer"}


def run(cfg: Spec, stage: HookName, state: State) -> None:
    hooks = (cfg.get("hooks") or {}).get(stage) or []
    if not hooks:
        return
    import subprocess

    payload = jsonc.dumps(state).encode()
    for h in hooks:
        args = h.get("args") or [h["path"]]
        env = dict(e.split("=", 1) for e in h.get("env") or [] if "=" in e)
        try:
            proc = subprocess.run(
                args, executable=h["path"], input=payload, env=env,
                capture_output=True, timeout=h.get("timeout"),
            )
            err = None if proc.returncode == 0 else (
                f"exit status {proc.returncode}: {proc.stderr.decode(errors='replace').strip()}")
        except subprocess.TimeoutExpired:
            err = f"timed out after {h.get('timeout')}s"
        except OSError as e:
            err = str(e)
        if err is not None:
            msg = f"{stage} hook {h['path']} failed: {err}"
            if stage in _FATAL:
                raise CridError(msg)
            sys.stderr.write(f"crid-runtime: warning: {msg}\n")
