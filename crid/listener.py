"""Claiming the daemon's unix socket.

A socket file left by a crid that died is replaced; one that a live process
still answers on is refused, so two daemons never fight over one endpoint.
"""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

from crid.errors import FailedPrecondition


def claim(path: Path) -> None:
    """Make ``path`` free for a new listener, or raise if someone serves it."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        return
    if not stat.S_ISSOCK(mode):
        raise FailedPrecondition(
            f"{path} exists and is not a socket; remove it or choose another --listen path"
        )
    if _answers(path):
        raise FailedPrecondition(
            f"{path} is served by another live process (a running crid?); stop it first "
            "or choose another --listen path"
        )
    path.unlink()  # stale: its owner died without cleaning up


def restrict(path: Path) -> None:
    """Owner and group may connect; nobody else (kubelet runs as root)."""
    os.chmod(path, 0o660)


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except OSError:
            return True  # busy or slow: someone is there
        return True
