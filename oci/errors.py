"""How crid-runtime reports failure: crid.errors types with runc's words.

Callers (conmon, cri-o style daemons, our own daemon) read stderr and look for
runc's phrases, so the few that matter are spelled here once.
"""

from __future__ import annotations

from crid.errors import CridError, FailedPrecondition, InvalidArgument, NotFound

NOT_EXIST = "container does not exist"
NOT_RUNNING = "container not running"

__all__ = [
    "NOT_EXIST",
    "NOT_RUNNING",
    "CridError",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "describe",
    "not_exist",
    "not_running",
]


def describe(e: BaseException) -> str:
    """One line for a person: our message, or an OSError's text and file."""
    if isinstance(e, CridError):
        return e.message
    if isinstance(e, OSError):
        msg = e.strerror or str(e)
        return f"{msg}: {e.filename}" if e.filename else msg
    return f"{type(e).__name__}: {e}"


def not_exist() -> NotFound:
    return NotFound(NOT_EXIST)


def not_running() -> FailedPrecondition:
    return FailedPrecondition(NOT_RUNNING)
