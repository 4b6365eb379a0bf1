"""Claiming the daemon's unix socket, and putting it in place with its final mode.

A socket file left by a crid that died is replaced; one that a live process
still answers on is refused, so two daemons never fight over one endpoint.

Whoever can connect to the socket runs containers as root, so nobody but
root and the configured group (``crid.api.listen_group``) may, at any moment:
the server binds in a private 0700 dir beside the final path, the socket
gets mode 0660 and its group there, and only then is it renamed into place.
(A chmod after bind would leave a window in which the socket has the mode
the umask gave it; changing the umask instead would change it for every
thread of the daemon.)
"""

from __future__ import annotations

import contextlib
import grp
import os
import secrets
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

from crid.errors import FailedPrecondition

SOCKET_MODE = 0o660


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


def group_id(group: str) -> int:
    """The gid of ``crid.api.listen_group``: a number, a group's name, or ""
    for the daemon's own group (root's, on a node)."""
    if not group:
        return os.getegid()
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise FailedPrecondition(
            f"crid.api.listen_group: there is no group {group!r} on this node; "
            "create it or give a gid") from None


@contextlib.contextmanager
def staged(path: Path, gid: int) -> Iterator[Path]:
    """A path to bind the server to, in a fresh dir only we may enter; when the
    block ends the socket there gets its mode and group and is moved to ``path``.
    On an error the private dir goes and ``path`` is left as it was."""
    private_dir = path.parent / f".{secrets.token_hex(3)}"
    os.mkdir(private_dir, 0o700)
    private_path = private_dir / "s"
    try:
        yield private_path
        os.chown(private_path, -1, gid)
        os.chmod(private_path, SOCKET_MODE)
        os.rename(private_path, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            private_path.unlink()
        private_dir.rmdir()


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
