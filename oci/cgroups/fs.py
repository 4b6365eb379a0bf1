"""Reading and writing cgroup files, with errors that name the file and value."""

from __future__ import annotations

import os

from crid.oci.errors import InvalidArgument


def write(d: str, name: str, value: str) -> None:
    path = os.path.join(d, name)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_TRUNC)
    except FileNotFoundError:
        # A tmp dir in tests, or a fresh real cgroup whose file is missing:
        # a real cgroup always has it, so only create in non-cgroup dirs.
        if os.path.exists(os.path.join(d, "cgroup.procs")):
            raise InvalidArgument(f"cgroup file {path} does not exist") from None
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_TRUNC, 0o644)
    try:
        os.write(fd, value.encode())
    except OSError as e:
        raise InvalidArgument(f"cannot write {value!r} to {path}: {e.strerror}") from None
    finally:
        os.close(fd)


def read(d: str, name: str) -> str:
    with open(os.path.join(d, name)) as f:
        return f.read().strip()


def exists(d: str, name: str) -> bool:
    return os.path.exists(os.path.join(d, name))

