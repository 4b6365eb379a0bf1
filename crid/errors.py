"""Typed errors that domain code raises; translated to gRPC in one place.

Nothing below ``crid/`` imports grpc: code says *what* went wrong by raising
one of these, and ``crid.interceptor`` turns it into a status code::

    CridError                  INTERNAL (anything unexpected)
    ├── InvalidArgument        INVALID_ARGUMENT   the request is malformed
    ├── NotFound               NOT_FOUND          the named object does not exist
    ├── AlreadyExists          ALREADY_EXISTS     a name or id is taken
    ├── FailedPrecondition     FAILED_PRECONDITION  valid, but not in this state
    ├── Unavailable            UNAVAILABLE        a dependency is down; retry later
    ├── DeadlineExceeded       DEADLINE_EXCEEDED  it took too long
    ├── ResourceExhausted      RESOURCE_EXHAUSTED a limit was hit
    │   └── DiskFull                                a filesystem crid writes to is full
    └── Unimplemented          UNIMPLEMENTED      crid does not do this (yet)

The message is the one a person reads: say what is wrong and, where it helps,
what to do about it.

A full disk (``ENOSPC``, an exceeded quota ``EDQUOT``, SQLite's
``SQLITE_FULL``) is not a bug: code that writes wraps the write in
``disk_full_under(dir, doing)``, which turns it into ``DiskFull`` naming the
dir whose filesystem ran out; ``as_crid_error`` is the interceptor's
fallback for a full disk nobody wrapped.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator

#: errno values that mean "this filesystem has no room for what you write".
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
#: SQLite's primary result code for a full disk (``sqlite3.SQLITE_FULL``).
SQLITE_FULL = 13


class CridError(Exception):
    """Base of every error crid raises on purpose."""

    code = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(CridError):
    code = "INVALID_ARGUMENT"


class NotFound(CridError):
    code = "NOT_FOUND"


class AlreadyExists(CridError):
    code = "ALREADY_EXISTS"


class FailedPrecondition(CridError):
    code = "FAILED_PRECONDITION"


class Unavailable(CridError):
    code = "UNAVAILABLE"


class DeadlineExceeded(CridError):
    code = "DEADLINE_EXCEEDED"


class ResourceExhausted(CridError):
    code = "RESOURCE_EXHAUSTED"


class DiskFull(ResourceExhausted):
    """A filesystem crid writes to has no space or inodes left (or a quota is spent)."""


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


class Unimplemented(CridError):
    code = "UNIMPLEMENTED"


class ConfigError(Exception):
    """The configuration is invalid; the daemon refuses to start (exit 2).

    ``source`` is the file (or ``flag --name``) and ``key`` the dotted key, so
    the message can point the operator at the exact line to fix.
    """

    def __init__(self, source: str, key: str, problem: str) -> None:
        super().__init__(f"{source}: {key}: {problem}")
        self.source = source
        self.key = key
        self.problem = problem
