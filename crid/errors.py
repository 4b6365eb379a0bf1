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

A full disk is not a bug: ``crid.disk_full`` turns one into ``DiskFull``.
This module imports nothing: crid-runtime loads it for every verb.
"""

from __future__ import annotations


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
