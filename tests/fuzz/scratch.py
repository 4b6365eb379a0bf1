"""A private scratch dir for targets whose parser reads a file or writes a tree.

One per process, under ``build/scratch/fuzz-<pid>`` of the checkout (never a
shared /tmp name), removed at exit.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parents[2]


@functools.cache
def directory() -> Path:
    path = _CHECKOUT / "build" / "scratch" / f"fuzz-{os.getpid()}"
    path.mkdir(parents=True, exist_ok=True)
    atexit.register(shutil.rmtree, path, True)
    return path


def file_with(name: str, data: bytes) -> Path:
    """``data`` written to ``name`` in the scratch dir (replacing it)."""
    path = directory() / name
    path.write_bytes(data)
    return path
