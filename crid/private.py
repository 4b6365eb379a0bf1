"""Files and dirs of the daemon's state that only root may read.

The state holds what a container's spec holds, its environment among it,
and that carries secrets (tokens, passwords from Kubernetes Secrets). So
``--root`` is a 0700 dir and a file with a spec or a process in it is 0600
from its first byte: made with that mode, never chmod-ed down after being
written, so no other user opens it in between. The process's umask is left
alone: it is process-wide (the daemon is multithreaded) and conmon and the
runtime inherit it.
"""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
PASSABLE_DIR_MODE = 0o711
FILE_MODE = 0o600
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW


def directory(path: Path, mode: int = DIR_MODE) -> None:
    """``path`` is a dir only its owner may enter or write in (``mode`` 0711:
    others may pass through to what they know the name of); tightened if an
    older crid, or a daemon started with umask 0, made it looser. Its missing
    parents are made as usual."""
    path.mkdir(parents=True, exist_ok=True, mode=mode)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def create(path: Path) -> None:
    """``path`` exists as a file only its owner may read; what it holds is kept."""
    os.close(_open(path, 0))


def write_text(path: Path, text: str) -> None:
    """Replace what ``path`` holds with ``text``, the file readable by its owner only."""
    with os.fdopen(_open(path, os.O_TRUNC), "w", encoding="utf-8") as f:
        f.write(text)


def _open(path: Path, flags: int) -> int:
    fd = os.open(path, _CREATE | flags, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # it was there before, made with another mode
    except BaseException:
        os.close(fd)
        raise
    return fd
