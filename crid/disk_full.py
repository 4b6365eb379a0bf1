"""A full disk (``ENOSPC``, an exceeded quota ``EDQUOT``, SQLite's ``SQLITE_FULL``)
told apart from other errors and turned into ``crid.errors.DiskFull``.

Code that writes wraps the write in ``disk_full_under(dir, doing)``, which
names the dir whose filesystem ran out; ``as_crid_error`` is the
interceptor's fallback for a full disk nobody wrapped. Apart from
``crid.errors`` because crid-runtime loads that module for every verb and
this one's imports (contextlib) would cost each a few milliseconds.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator

from crid.errors import CridError, DiskFull

#: errno values that mean "this filesystem has no room for what you write".
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
#: SQLite's primary result code for a full disk (``sqlite3.SQLITE_FULL``).
SQLITE_FULL = 13


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the filesystem (or the database file on it) is full."""
    if isinstance(exc, OSError):
        return exc.errno in NO_SPACE
    # sqlite3.Error carries its result code; the extended code keeps the primary in its low byte.
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF == SQLITE_FULL


def disk_full(exc: BaseException, where: str | os.PathLike[str], doing: str) -> DiskFull:
    """The ``DiskFull`` for ``exc`` (see ``is_disk_full``), hit under ``where`` while ``doing``."""
    if isinstance(exc, OSError) and exc.errno == errno.EDQUOT:
        reason = "disk quota exceeded"
    elif isinstance(exc, OSError):
        reason = "no space left on device"
    else:
        reason = "database or disk is full"
    return DiskFull(f"{doing}: {reason} on the filesystem under {os.fspath(where)}; "
                    "free space there and retry")


@contextlib.contextmanager
def disk_full_under(where: str | os.PathLike[str], doing: str) -> Iterator[None]:
    """Turn a full disk in the block into ``DiskFull``; other errors pass unchanged."""
    try:
        yield
    except CridError:
        raise
    except Exception as exc:
        if is_disk_full(exc):
            raise disk_full(exc, where, doing) from exc
        raise


def as_crid_error(exc: BaseException) -> CridError | None:
    """A typed error for what the interceptor would otherwise call INTERNAL, if one fits."""
    if not is_disk_full(exc):
        return None
    filename = getattr(exc, "filename", None)
    where = (os.path.dirname(os.fsdecode(filename)) if isinstance(filename, (str, bytes))
             else "a dir crid writes to")
    return disk_full(exc, where, "writing")
