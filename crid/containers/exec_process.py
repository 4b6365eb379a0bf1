"""The process spec of a command exec'd into a container, shared by ExecSync and the
streaming Exec so both run as the container's own process would (user, env, cwd, caps)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def exec_process(bundle: Path, cmd: list[str]) -> dict[str, Any]:
    """The container's own process settings (user, env, cwd, caps) with another command."""
    spec = json.loads((bundle / "config.json").read_text())
    process: dict[str, Any] = dict(spec.get("process", {}))
    process["args"] = cmd
    process["terminal"] = False
    process.pop("consoleSize", None)
    return process
