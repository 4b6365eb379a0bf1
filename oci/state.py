"""Per-container state under ``--root/<id>/``: the state file, the exec fifo, status.

``state.json`` is written atomically (temp file + rename) so a reader never sees
half a file, and is readable by root only: it holds the bundle's config, the
process's env among it (runc's too: its root is 0700, its state file 0600).

Status is derived, not stored: a container is ``stopped`` when its
init process is gone (or is a zombie, or its pid was reused — we keep the
process start time, read from ``/proc/<pid>/stat`` here for the runtime and
the daemon alike), ``paused`` when its freezer says so, ``created`` while the
exec fifo exists, else ``running``.
"""

from __future__ import annotations

import os

from crid.oci import jsonc
from crid.oci.errors import InvalidArgument, not_exist

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from crid.oci.runtime_spec import ContainerState, State


STATE_FILE = "state.json"
ROOT_MODE, FILE_MODE = 0o700, 0o600
FIFO = "exec.fifo"


def check_id(cid: str) -> None:
    if not cid:
        raise InvalidArgument("container id cannot be empty")
    # runc's rule (^[\w+-\.]+$), spelled without `re`, which costs start-up time
    if cid in (".", "..") or not all(c.isalnum() or c in "_+-." for c in cid) or \
            not cid.isascii():
        raise InvalidArgument(f"invalid container id format: {cid}")


def container_dir(root: str, cid: str) -> str:
    check_id(cid)
    return os.path.join(root, cid)


def load(root: str, cid: str) -> ContainerState:
    try:
        with open(os.path.join(container_dir(root, cid), STATE_FILE), "rb") as f:
            data: ContainerState = jsonc.loads(f.read())
    except FileNotFoundError:
        raise not_exist() from None
    return data


def save(root: str, cid: str, data: ContainerState) -> None:
    _replace(os.path.join(container_dir(root, cid), STATE_FILE), jsonc.dumps(data))


def write_pid_file(path: str, pid: int) -> None:
    _replace(os.path.abspath(path), str(pid))


def _replace(path: str, text: str) -> None:
    """Write ``path`` whole or not at all: a temp file beside it, then rename.
    The temp file is 0600 from its creation (and a leftover one made so)."""
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    with open(fd, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def read_proc_stat(pid: int, proc_dir: int | None = None) -> bytes | None:
    """The ``/proc/<pid>/stat`` line of ``pid``, None once it is unreadable (gone).

    With ``proc_dir`` (an fd of its /proc/<pid>), read through that fd: it
    keeps naming the process it was opened for, and fails once that is gone.
    """
    try:
        if proc_dir is None:
            with open(f"/proc/{pid}/stat", "rb") as f:
                return f.read()
        fd = os.open("stat", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc_dir)
        try:
            return os.read(fd, 4096)
        finally:
            os.close(fd)
    except OSError:
        return None


def _after_comm(stat: bytes) -> list[bytes]:
    """Fields 3 (state) onward: field 2, the name in parentheses, may itself hold
    spaces and ')', so the split is after the last ')'."""
    return stat[stat.rindex(b")") + 2 :].split()


def stat_state(stat: bytes) -> str:
    """The state letter (field 3): R, S, D, Z (zombie), X (dead), ..."""
    return _after_comm(stat)[0].decode()


def stat_parent(stat: bytes) -> int:
    """The parent's pid (field 4)."""
    return int(_after_comm(stat)[1])


def stat_running(stat: bytes) -> bool:
    """Not yet a zombie (Z) or dead (X), though its /proc entry is still there."""
    return _after_comm(stat)[0] not in (b"Z", b"X")


def stat_start_time(stat: bytes) -> int | None:
    """Start time (field 22, clock ticks since boot) of a process that still runs,
    else None: tells a live process from a later one that got the same pid."""
    fields = _after_comm(stat)
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def proc_start_time(pid: int, proc_dir: int | None = None) -> int | None:
    """Start time of a live, non-zombie process, else None (``read_proc_stat``)."""
    stat = read_proc_stat(pid, proc_dir)
    return None if stat is None else stat_start_time(stat)


def is_alive(st: ContainerState) -> bool:
    pid = int(st.get("pid") or 0)
    return pid > 0 and proc_start_time(pid) == st.get("pid_start")


def status(root: str, st: ContainerState) -> str:
    if not is_alive(st):
        return "stopped"
    from crid.oci.cgroups import is_frozen

    if is_frozen(st.get("cgroup") or {}):
        return "paused"
    if os.path.exists(os.path.join(root, st["id"], FIFO)):
        return "created"
    return "running"


def oci_state(root: str, st: ContainerState) -> State:
    """The runtime-spec state object (plus runc's extra fields)."""
    s = status(root, st)
    return {
        "ociVersion": st.get("ociVersion", "1.0.2"),
        "id": st["id"],
        "pid": 0 if s == "stopped" else st["pid"],
        "status": s,
        "bundle": st["bundle"],
        "rootfs": st.get("rootfs", ""),
        "created": st.get("created", ""),
        "annotations": st.get("annotations") or {},
        "owner": "",
    }
