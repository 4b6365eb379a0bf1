"""linux.seccomp -> a BPF filter, built and loaded by libseccomp (libseccomp.so.2)
through ctypes: every action, the arch list, argument conditions and flags.
"""

from __future__ import annotations

import ctypes
import errno as _errno

from crid.oci.errors import InvalidArgument

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from crid.oci.runtime_spec import Seccomp, Syscall


_ACT_KILL_PROCESS = 0x80000000
_ACT_KILL_THREAD = 0x00000000
_ACT_TRAP = 0x00030000
_ACT_ERRNO = 0x00050000
_ACT_TRACE = 0x7FF00000
_ACT_LOG = 0x7FFC0000
_ACT_ALLOW = 0x7FFF0000
_ACT_NOTIFY = 0x7FC00000

OPERATORS = {
    "SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7,
}
ARCHES = {
    "SCMP_ARCH_X86": 0x40000003, "SCMP_ARCH_X86_64": 0xC000003E,
    "SCMP_ARCH_X32": 0x4000003E, "SCMP_ARCH_ARM": 0x40000028,
    "SCMP_ARCH_AARCH64": 0xC00000B7, "SCMP_ARCH_MIPS": 0x00000008,
    "SCMP_ARCH_MIPS64": 0x80000008, "SCMP_ARCH_MIPS64N32": 0xA0000008,
    "SCMP_ARCH_MIPSEL": 0x40000008, "SCMP_ARCH_MIPSEL64": 0xC0000008,
    "SCMP_ARCH_MIPSEL64N32": 0xE0000008, "SCMP_ARCH_PPC": 0x00000014,
    "SCMP_ARCH_PPC64": 0x80000015, "SCMP_ARCH_PPC64LE": 0xC0000015,
    "SCMP_ARCH_S390": 0x00000016, "SCMP_ARCH_S390X": 0x80000016,
    "SCMP_ARCH_RISCV64": 0xC00000F3,
}
ACTIONS = [
    "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY",
]
FLAGS = {
    "SECCOMP_FILTER_FLAG_LOG": 6,  # SCMP_FLTATR_CTL_LOG
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 7,  # SCMP_FLTATR_CTL_SSB
    "SECCOMP_FILTER_FLAG_TSYNC": 4,  # SCMP_FLTATR_CTL_TSYNC
}
_FLTATR_CTL_NNP = 3


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


def action(name: str, errno_ret: int | None, default_errno: int = _errno.EPERM) -> int:
    if name in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return _ACT_KILL_THREAD
    if name == "SCMP_ACT_KILL_PROCESS":
        return _ACT_KILL_PROCESS
    if name == "SCMP_ACT_TRAP":
        return _ACT_TRAP
    if name == "SCMP_ACT_ERRNO":
        return _ACT_ERRNO | ((default_errno if errno_ret is None else errno_ret) & 0xFFFF)
    if name == "SCMP_ACT_TRACE":
        return _ACT_TRACE | ((default_errno if errno_ret is None else errno_ret) & 0xFFFF)
    if name == "SCMP_ACT_ALLOW":
        return _ACT_ALLOW
    if name == "SCMP_ACT_LOG":
        return _ACT_LOG
    if name == "SCMP_ACT_NOTIFY":
        raise InvalidArgument("seccomp: SCMP_ACT_NOTIFY needs a listenerPath, not supported")
    raise InvalidArgument(f"seccomp: unknown action {name!r}")


class Filter:
    """A filter under construction; ``load`` installs it on the calling thread."""

    def __init__(self, lib: ctypes.CDLL, cfg: Seccomp) -> None:
        """Build the filter ``cfg`` describes with ``lib`` (libseccomp, in memory)."""
        self.lib = lib
        self.lib.seccomp_init.restype = ctypes.c_void_p
        self.lib.seccomp_init.argtypes = [ctypes.c_uint32]
        self.lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        self.lib.seccomp_rule_add_array.argtypes = [
            ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p]
        self.lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        self.lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        self.lib.seccomp_load.argtypes = [ctypes.c_void_p]
        self.lib.seccomp_release.argtypes = [ctypes.c_void_p]
        default_errno = cfg.get("defaultErrnoRet")
        self.default = action(cfg["defaultAction"], default_errno)
        self.ctx = self.lib.seccomp_init(self.default)
        if not self.ctx:
            raise InvalidArgument("seccomp: seccomp_init failed")
        # We set no_new_privs ourselves when the process asks for it.
        self._ok(self.lib.seccomp_attr_set(self.ctx, _FLTATR_CTL_NNP, 0), "attr nnp")
        for flag in cfg.get("flags") or []:
            if flag not in FLAGS:
                raise InvalidArgument(f"seccomp: unknown flag {flag!r}")
            self._ok(self.lib.seccomp_attr_set(self.ctx, FLAGS[flag], 1), f"flag {flag}")
        for arch in cfg.get("architectures") or []:
            if arch not in ARCHES:
                raise InvalidArgument(f"seccomp: unknown architecture {arch!r}")
            rc = self.lib.seccomp_arch_add(self.ctx, ARCHES[arch])
            if rc != -_errno.EEXIST:
                self._ok(rc, f"arch {arch}")
        for rule in cfg.get("syscalls") or []:
            self._rule(rule)

    @classmethod
    def build(cls, cfg: Seccomp) -> Filter:
        """Load libseccomp and build the filter ``cfg`` describes."""
        try:
            lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        except OSError as e:
            raise InvalidArgument(f"seccomp requested but libseccomp.so.2 is missing: {e}") from e
        return cls(lib, cfg)

    def _ok(self, rc: int, what: str) -> None:
        if rc < 0:
            raise InvalidArgument(f"seccomp: {what}: {_errno.errorcode.get(-rc, -rc)}")

    def _rule(self, rule: Syscall) -> None:
        act = action(rule["action"], rule.get("errnoRet"))
        if act == self.default:
            return
        args = rule.get("args") or []
        cmps = (_ArgCmp * max(len(args), 1))()
        for i, a in enumerate(args):
            op = OPERATORS.get(a.get("op"))
            if op is None:
                raise InvalidArgument(f"seccomp: unknown operator {a.get('op')!r}")
            cmps[i] = _ArgCmp(int(a["index"]), op, int(a.get("value") or 0),
                              int(a.get("valueTwo") or 0))
        for name in rule["names"]:
            nr = self.lib.seccomp_syscall_resolve_name(name.encode())
            if nr == -1:  # __NR_SCMP_ERROR: unknown on this arch, skipped like runc
                continue
            if len(args) > 1 and len({a["index"] for a in args}) < len(args):
                # libseccomp refuses two conditions on one argument in one rule:
                # runc adds one rule per condition, and so do we.
                for i in range(len(args)):
                    self._ok(self.lib.seccomp_rule_add_array(
                        self.ctx, act, nr, 1, ctypes.byref(cmps[i])), f"rule {name}")
            else:
                self._ok(self.lib.seccomp_rule_add_array(
                    self.ctx, act, nr, len(args), cmps if args else None), f"rule {name}")

    def load(self) -> None:
        try:
            self._ok(self.lib.seccomp_load(self.ctx), "load")
        finally:
            self.lib.seccomp_release(self.ctx)
