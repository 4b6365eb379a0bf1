"""v2 devices: a ``BPF_PROG_TYPE_CGROUP_DEVICE`` program built from the rules.

cgroup v2 has no ``devices`` files; the kernel asks a BPF program attached to
the cgroup instead, once per access (open for read and/or write, mknod) with
``struct bpf_cgroup_dev_ctx {u32 access_type; u32 major; u32 minor;}``
(``access_type`` = access << 16 | type). Returning 1 allows, 0 denies (EPERM).

The rules are first reduced to a v1 device cgroup's state (``..devices``):
a default and exceptions of the other kind. The program loads type, access,
major and minor into r2..r5, then tests each exception in turn and returns
its verdict on a match, else the default::

    r2 = ctx->access_type & 0xffff      type (1 block, 2 char)
    r3 = ctx->access_type >> 16         access (1 mknod, 2 read, 4 write)
    r4 = ctx->major; r5 = ctx->minor
    per exception:  type, then access, then major, minor unless "*"; r0 = verdict; exit
    r0 = default; exit

An allow exception (default deny) matches when every requested bit is in it,
a deny exception (default allow) when any is, as the v1 controller decides.

The program replaces any earlier one on the cgroup with no moment without a
filter: attached with ``BPF_F_ALLOW_MULTI | BPF_F_REPLACE`` over the one
program there, or, when there are several, attached beside them first and
they are detached after (as runc does). It lives as long as it is attached:
removing the cgroup frees it.
"""

from __future__ import annotations

import os

from crid.oci import bpf
from crid.oci.cgroups import devices as rules_model
from crid.oci.errors import CridError

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from crid.oci.cgroups.devices import Emulator
    from crid.oci.linux import Syscalls
    from crid.oci.runtime_spec import DeviceRule

LICENSE = "Apache"
PROG_NAME = "crid_devices"  # visible in BPF_OBJ_GET_INFO_BY_FD and bpftool
BPF_DEVCG_DEV_BLOCK = 1
BPF_DEVCG_DEV_CHAR = 2
_TYPES = {"b": BPF_DEVCG_DEV_BLOCK, "c": BPF_DEVCG_DEV_CHAR}


def program(emu: Emulator) -> bpf.Program:
    p = bpf.Program()
    p.ldx_w(bpf.R2, bpf.R1, 0).and32(bpf.R2, 0xFFFF)
    p.ldx_w(bpf.R3, bpf.R1, 0).rsh32(bpf.R3, 16)
    p.ldx_w(bpf.R4, bpf.R1, 4)
    p.ldx_w(bpf.R5, bpf.R1, 8)
    verdict = 0 if emu.default_allow else 1
    for i, ((kind, major, minor), access) in enumerate(emu.exceptions()):
        nxt = f"rule{i + 1}"
        p.label(f"rule{i}")
        p.jne(bpf.R2, _TYPES[kind], nxt)
        if access != rules_model.ALL_ACCESS:
            p.mov32_reg(bpf.R1, bpf.R3).and32(bpf.R1, access)
            if verdict:  # allow only if no bit outside the exception was asked for
                p.jne_reg(bpf.R1, bpf.R3, nxt)
            else:  # deny if any asked bit is in the exception
                p.jeq(bpf.R1, 0, nxt)
        if major != rules_model.WILDCARD:
            p.jne(bpf.R4, major, nxt)
        if minor != rules_model.WILDCARD:
            p.jne(bpf.R5, minor, nxt)
        p.mov32(bpf.R0, verdict).exit()
    p.label(f"rule{len(emu.rules)}")
    p.mov32(bpf.R0, 1 if emu.default_allow else 0).exit()
    return p


def build(rules: list[DeviceRule] | None) -> bpf.Program:
    """The program for a container's rule list (defaults appended, as at create)."""
    return program(rules_model.effective(rules))


def load(rules: list[DeviceRule] | None, sc: Syscalls | None = None) -> int:
    """Load (not attach) the program for ``rules``; return its fd. ``create`` does
    this before it makes the cgroup dirs, whose mkdir waits for the kernel anyway."""
    from crid.oci import linux as L

    code = build(rules).assemble()
    sc = sc or L.syscalls()
    try:
        return sc.bpf_prog_load(L.BPF_PROG_TYPE_CGROUP_DEVICE, code, LICENSE, PROG_NAME)
    except OSError as e:
        raise CridError(f"device filter: {e.strerror or e}") from None


def apply(rules: list[DeviceRule] | None, d: str, sc: Syscalls | None = None,
          prog: int | None = None) -> int:
    """Make the program for ``rules`` (or the loaded ``prog``, whose fd this
    closes) the one device filter on cgroup ``d``; return its program id."""
    from crid.oci import linux as L

    sc = sc or L.syscalls()
    if prog is None:
        prog = load(rules, sc)
    return attach(sc, prog, d)


def attach(sc: Syscalls, prog: int, d: str) -> int:
    """Attach loaded ``prog`` to cgroup ``d`` in place of what is there (closes ``prog``)."""
    from crid.oci import linux as L

    fds = [prog]
    try:
        try:
            cg = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise CridError(f"device filter: cannot open cgroup {d}: {e.strerror}") from None
        fds.append(cg)
        try:
            old_fds = [sc.bpf_prog_get_fd_by_id(i)
                       for i in sc.bpf_prog_query(cg, L.BPF_CGROUP_DEVICE)]
            fds += old_fds
            if len(old_fds) == 1:
                sc.bpf_prog_attach(cg, prog, L.BPF_CGROUP_DEVICE,
                                   L.BPF_F_ALLOW_MULTI | L.BPF_F_REPLACE, replace_fd=old_fds[0])
            else:
                sc.bpf_prog_attach(cg, prog, L.BPF_CGROUP_DEVICE, L.BPF_F_ALLOW_MULTI)
                for fd in old_fds:
                    sc.bpf_prog_detach(cg, fd, L.BPF_CGROUP_DEVICE)
            return sc.bpf_prog_id(prog)
        except OSError as e:
            raise CridError(f"device filter on cgroup {d}: {e.strerror or e}") from None
    finally:
        for fd in fds:
            os.close(fd)
