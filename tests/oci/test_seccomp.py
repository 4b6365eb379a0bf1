"""Seccomp actions and filter building through the real libseccomp (not loaded)."""

from __future__ import annotations

import pytest
from crid.oci import seccomp
from crid.oci.errors import InvalidArgument
from crid.oci.runtime_spec import Seccomp


def test_actions() -> None:
    assert seccomp.action("SCMP_ACT_ALLOW", None) == 0x7FFF0000
    assert seccomp.action("SCMP_ACT_ERRNO", 28) == 0x00050000 | 28
    assert seccomp.action("SCMP_ACT_ERRNO", None) == 0x00050000 | 1
    assert seccomp.action("SCMP_ACT_KILL_PROCESS", None) == 0x80000000
    with pytest.raises(InvalidArgument):
        seccomp.action("SCMP_ACT_BOGUS", None)


def test_filter_builds_and_skips_unknown_syscalls() -> None:
    f = seccomp.Filter.build({
        "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
        "flags": ["SECCOMP_FILTER_FLAG_LOG"],
        "syscalls": [
            {"names": ["mkdir", "not_a_syscall_anywhere"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
                      {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
        ]})
    f.lib.seccomp_release(f.ctx)


@pytest.mark.parametrize(("cfg", "words"), [
    ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_NOPE"]}, "architecture"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["NOPE"]}, "unknown flag"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 1, "value": 1, "op": "SCMP_CMP_WHAT"}]}]}, "unknown operator"),
])
def test_bad_filters(cfg: Seccomp, words: str) -> None:
    with pytest.raises(InvalidArgument, match=words):
        seccomp.Filter.build(cfg)
