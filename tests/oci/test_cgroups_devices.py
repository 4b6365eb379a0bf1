"""The device rules model, the eBPF assembler and the v2 device program, as pure
logic: emitted instructions for given rule lists, and the program run by a
small evaluator of our own instruction subset against what a v1 device cgroup
answers (the emulator's ``allows``) for many rule lists and accesses. The
calls that load and attach it are recorded through the syscall seam; the
kernel's verifier is asked for real only in the one test that loads it."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest
from crid.oci import bpf, cgroups
from crid.oci import linux as L
from crid.oci.cgroups import devices as model
from crid.oci.cgroups.v2 import devices as v2dev
from crid.oci.errors import CridError, InvalidArgument
from crid.oci.runtime_spec import DeviceRule, Linux

M, R, W = model.MKNOD, model.READ, model.WRITE
DENY_ALL: DeviceRule = {"allow": False, "access": "rwm"}


# --- the assembler -------------------------------------------------------------------

def test_encoding_matches_struct_bpf_insn() -> None:
    # opcode, dst | src << 4, off (le16), imm (le32)
    assert bpf.encode((bpf.LDX_MEM_W, 2, 1, 4, 0)) == bytes([0x61, 0x12, 4, 0, 0, 0, 0, 0])
    assert bpf.encode((bpf.MOV32_K, 0, 0, 0, 1)) == bytes([0xB4, 0, 0, 0, 1, 0, 0, 0])
    assert bpf.encode((bpf.JNE_K, 4, 0, 3, 254)) == bytes([0x55, 4, 3, 0, 254, 0, 0, 0])
    assert bpf.encode((bpf.JNE_X, 1, 3, 1, 0)) == bytes([0x5D, 0x31, 1, 0, 0, 0, 0, 0])
    assert bpf.encode((bpf.EXIT, 0, 0, 0, 0)) == bytes([0x95, 0, 0, 0, 0, 0, 0, 0])
    assert bpf.encode((bpf.AND32_K, 2, 0, 0, 0xFFFF)) == bytes([0x54, 2, 0, 0, 0xFF, 0xFF, 0, 0])
    assert bpf.encode((bpf.RSH32_K, 3, 0, 0, 16)) == bytes([0x74, 3, 0, 0, 16, 0, 0, 0])


def test_labels_become_offsets_from_the_next_instruction() -> None:
    p = bpf.Program().jne(bpf.R2, 1, "out").mov32(bpf.R0, 1).exit().label("out")
    p.mov32(bpf.R0, 0).exit()
    assert p.listing() == ["jne r2, 0x1, +2", "mov32 r0, 0x1", "exit", "mov32 r0, 0x0", "exit"]
    assert bpf.decode(p.assemble()) == p.resolved()


def test_assembler_refuses_what_the_verifier_would() -> None:
    with pytest.raises(ValueError, match="backward"):
        bpf.Program().label("top").jne(bpf.R2, 1, "top").assemble()
    with pytest.raises(ValueError, match="unknown label"):
        bpf.Program().jne(bpf.R2, 1, "nowhere").assemble()
    with pytest.raises(ValueError, match="32 signed bits"):
        bpf.Program().mov32(bpf.R0, 1 << 31)
    with pytest.raises(ValueError, match="set twice"):
        bpf.Program().label("a").label("a")


# --- the rules model -----------------------------------------------------------------

def test_parse_defaults_and_wildcards() -> None:
    assert model.parse({"allow": False, "access": "rwm"}) == (False, ("a", -1, -1), M | R | W)
    assert model.parse({"allow": True, "type": "b", "major": None, "minor": -1}) == (
        True, ("b", -1, -1), M | R | W)
    assert model.parse({"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}) == (
        True, ("c", 1, 3), R | W)


@pytest.mark.parametrize("rule", [
    {"type": "x"}, {"type": "c", "access": "rwx"}, {"type": "c", "major": "1"},
    {"type": "c", "major": 1 << 40}, {"type": "c", "minor": True},
])
def test_parse_refuses_bad_rules(rule: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument):
        model.parse(rule)


def test_emulator_type_a_resets_and_last_rule_wins() -> None:
    emu = model.effective([{"allow": True, "type": "c", "major": 1, "minor": 3},
                           DENY_ALL,
                           {"allow": True, "type": "c", "major": 8, "minor": 0, "access": "rw"},
                           {"allow": False, "type": "c", "major": 8, "minor": 0, "access": "w"},
                           {"allow": True, "type": "b", "major": 7, "access": "r"},
                           {"allow": True, "type": "b", "major": 7, "access": "w"}],
                          defaults=False)
    assert not emu.default_allow
    assert emu.exceptions() == [(("b", 7, -1), R | W), (("c", 8, 0), R)]
    emu = model.effective([{"allow": True, "access": "rwm"},
                           {"allow": False, "type": "b", "major": 254, "minor": 0}],
                          defaults=False)
    assert emu.default_allow and emu.exceptions() == [(("b", 254, 0), M | R | W)]


def test_emulator_refuses_to_punch_a_hole_in_a_wildcard() -> None:
    with pytest.raises(InvalidArgument, match="punch a hole"):
        model.effective([DENY_ALL, {"allow": True, "type": "c", "access": "rw"},
                         {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"}],
                        defaults=False)


def test_defaults_match_the_v1_controller_list() -> None:
    from crid.oci.cgroups.v1 import devices as v1

    assert sorted(v1.rule(r) for r in model.DEFAULT_ALLOW) == sorted(v1.DEFAULT_ALLOW)


def test_with_device_nodes_appends_allow_rules() -> None:
    linux: Linux = {"devices": [{"path": "/dev/a", "type": "c", "major": 10, "minor": 229},
                         {"path": "/dev/b", "type": "u", "major": 1, "minor": 3},
                         {"path": "/dev/f", "type": "p"}]}
    assert cgroups.with_device_nodes([DENY_ALL], linux) == [
        DENY_ALL,
        {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]


# --- the program ---------------------------------------------------------------------

PROLOGUE = ["ldxw r2, [r1+0]", "and32 r2, 0xffff", "ldxw r3, [r1+0]", "rsh32 r3, 0x10",
            "ldxw r4, [r1+4]", "ldxw r5, [r1+8]"]


def _listing(rules: list[DeviceRule]) -> list[str]:
    return v2dev.program(model.effective(rules, defaults=False)).listing()


def test_program_deny_all() -> None:
    assert _listing([DENY_ALL]) == [*PROLOGUE, "mov32 r0, 0x0", "exit"]


def test_program_allow_all() -> None:
    assert _listing([{"allow": True, "access": "rwm"}]) == [*PROLOGUE, "mov32 r0, 0x1", "exit"]


def test_program_allow_one_device_with_access_check() -> None:
    assert _listing([DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": 3,
                                "access": "rw"}]) == [
        *PROLOGUE,
        "jne r2, 0x2, +7",          # not a char device: next rule
        "mov32 r1, r3",
        "and32 r1, 0x6",            # r|w
        "jne r1, r3, +4",           # asked for a bit outside rw: next
        "jne r4, 0x1, +3",
        "jne r5, 0x3, +2",
        "mov32 r0, 0x1", "exit",    # allow
        "mov32 r0, 0x0", "exit",    # default: deny
    ]


def test_program_wildcards_and_rwm_skip_checks() -> None:
    assert _listing([DENY_ALL, {"allow": True, "type": "c", "major": 136}]) == [
        *PROLOGUE, "jne r2, 0x2, +3", "jne r4, 0x88, +2", "mov32 r0, 0x1", "exit",
        "mov32 r0, 0x0", "exit"]


def test_program_default_allow_denies_on_any_shared_bit() -> None:
    assert _listing([{"allow": True, "access": "rwm"},
                     {"allow": False, "type": "b", "major": 254, "minor": 0, "access": "w"}]) == [
        *PROLOGUE, "jne r2, 0x1, +7", "mov32 r1, r3", "and32 r1, 0x4", "jeq r1, 0x0, +4",
        "jne r4, 0xfe, +3", "jne r5, 0x0, +2", "mov32 r0, 0x0", "exit",
        "mov32 r0, 0x1", "exit"]


def run_program(code: bytes, kind: int, major: int, minor: int, access: int) -> int:
    """Evaluate our instruction subset (what the kernel would return)."""
    insns = bpf.decode(code)
    reg = [0] * 11
    mem = {0: (access << 16) | kind, 4: major, 8: minor}
    reg[1] = -1  # the context pointer; only loads from it are allowed
    pc = 0
    mask64 = (1 << 64) - 1
    while True:
        op, dst, src, off, imm = insns[pc]
        pc += 1
        if op == bpf.LDX_MEM_W:
            assert src == 1, "loads only from the context"
            reg[dst] = mem[off]
        elif op == bpf.AND32_K:
            reg[dst] = (reg[dst] & imm) & 0xFFFFFFFF
        elif op == bpf.RSH32_K:
            reg[dst] = (reg[dst] & 0xFFFFFFFF) >> imm
        elif op == bpf.MOV32_K:
            reg[dst] = imm & 0xFFFFFFFF
        elif op == bpf.MOV32_X:
            reg[dst] = reg[src] & 0xFFFFFFFF
        elif op in (bpf.JNE_K, bpf.JEQ_K, bpf.JNE_X):
            other = reg[src] if op == bpf.JNE_X else imm & mask64
            equal = reg[dst] & mask64 == other & mask64
            if equal == (op == bpf.JEQ_K):
                pc += off
        elif op == bpf.EXIT:
            return reg[0]
        else:
            raise AssertionError(f"unexpected opcode {op:#x}")


def _random_rules(rng: random.Random) -> list[DeviceRule]:
    rules: list[DeviceRule] = [DENY_ALL] if rng.random() < 0.7 else [
        {"allow": True, "access": "rwm"}]
    for _ in range(rng.randrange(0, 8)):
        r: DeviceRule = {"allow": rng.random() < 0.6, "type": rng.choice("bc"),
                             "access": "".join(c for c in "rwm" if rng.random() < 0.6) or "r"}
        if rng.random() < 0.8:
            r["major"] = rng.choice([1, 7, 254])
        if rng.random() < 0.7:
            r["minor"] = rng.choice([0, 3])
        rules.append(r)
    return rules


def test_program_decides_as_a_v1_device_cgroup() -> None:
    rng = random.Random(14)
    checked = 0
    while checked < 150:
        rules = _random_rules(rng)
        try:
            emu = model.effective(rules, defaults=rng.random() < 0.5)
        except InvalidArgument:
            continue  # a hole in a wildcard: refused, as it should be
        code = v2dev.program(emu).assemble()
        for kind, t in (("b", 1), ("c", 2)):
            for major in (1, 7, 254, 136):
                for minor in (0, 3, 9):
                    for access in range(1, 8):
                        want = emu.allows(kind, major, minor, access)
                        got = run_program(code, t, major, minor, access)
                        assert got == int(want), (rules, kind, major, minor, access)
        checked += 1


def test_defaults_allow_null_and_refuse_a_disk() -> None:
    code = v2dev.build([DENY_ALL]).assemble()
    assert run_program(code, 2, 1, 3, R | W) == 1       # /dev/null
    assert run_program(code, 2, 136, 4, R | W) == 1     # a pts
    assert run_program(code, 1, 254, 0, R) == 0         # the host's disk: read
    assert run_program(code, 1, 254, 0, W) == 0         # ... and write
    assert run_program(code, 1, 254, 0, M) == 1         # mknod is fine (it cannot be opened)


# --- loading and attaching, through the seam -----------------------------------------

class Recorder(L.Syscalls):
    def __init__(self, attached: list[int]) -> None:
        super().__init__()
        self.attached = attached
        self.calls: list[tuple[Any, ...]] = []
        self.next_fd = 0

    def _fd(self) -> int:
        return os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)

    def bpf_prog_query(self, target_fd: int, attach_type: int) -> list[int]:
        self.calls.append(("query", attach_type))
        return list(self.attached)

    def bpf_prog_load(self, prog_type: int, code: bytes, license: str, name: str = "") -> int:
        self.calls.append(("load", prog_type, len(code) // 8, license, name))
        return self._fd()

    def bpf_prog_get_fd_by_id(self, prog_id: int) -> int:
        self.calls.append(("fd_by_id", prog_id))
        return self._fd()

    def bpf_prog_attach(self, target_fd: int, prog_fd: int, attach_type: int, flags: int,
                        replace_fd: int = 0) -> None:
        self.calls.append(("attach", attach_type, flags, bool(replace_fd)))

    def bpf_prog_detach(self, target_fd: int, prog_fd: int, attach_type: int) -> None:
        self.calls.append(("detach", attach_type))

    def bpf_prog_id(self, prog_fd: int) -> int:
        return 99


@pytest.mark.parametrize(("attached", "expected"), [
    ([], [("attach", L.BPF_CGROUP_DEVICE, L.BPF_F_ALLOW_MULTI, False)]),
    ([5], [("fd_by_id", 5),
           ("attach", L.BPF_CGROUP_DEVICE, L.BPF_F_ALLOW_MULTI | L.BPF_F_REPLACE, True)]),
    ([5, 6], [("fd_by_id", 5), ("fd_by_id", 6),
              ("attach", L.BPF_CGROUP_DEVICE, L.BPF_F_ALLOW_MULTI, False),
              ("detach", L.BPF_CGROUP_DEVICE), ("detach", L.BPF_CGROUP_DEVICE)]),
])
def test_attach_replaces_without_a_gap(tmp_path: Path, attached: list[int],
                                       expected: list[tuple[Any, ...]]) -> None:
    sc = Recorder(attached)
    assert v2dev.apply([DENY_ALL], str(tmp_path), sc) == 99
    n = len(v2dev.build([DENY_ALL]).insns)
    assert sc.calls == [("load", L.BPF_PROG_TYPE_CGROUP_DEVICE, n, "Apache", "crid_devices"),
                        ("query", L.BPF_CGROUP_DEVICE), *expected]


def test_attach_failure_names_the_cgroup(tmp_path: Path) -> None:
    class Failing(Recorder):
        def bpf_prog_attach(self, *a: Any, **k: Any) -> None:
            raise OSError(1, "bpf prog attach: Operation not permitted")

    with pytest.raises(CridError, match=f"device filter on cgroup {tmp_path}"):
        v2dev.apply([DENY_ALL], str(tmp_path), Failing([]))


def test_apply_attaches_in_the_hybrid_cgroup2_tree(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    seen: list[tuple[Any, str]] = []
    monkeypatch.setattr(v2dev, "apply", lambda rules, d, prog=None: seen.append((rules, d)))
    (tmp_path / "devices").mkdir()
    (tmp_path / "unified").mkdir()
    paths = {"devices": str(tmp_path / "devices"), "": str(tmp_path / "unified")}
    cgroups.apply(paths, {"devices": [DENY_ALL]}, on_create=True)
    assert seen == [([DENY_ALL], str(tmp_path / "unified"))]
    assert (tmp_path / "devices" / "devices.deny").read_text() == "a"
    assert not (tmp_path / "unified" / "devices.deny").exists()
    seen.clear()
    cgroups.apply(paths, {"memory": {"limit": 10}}, on_create=False)  # no devices: no program
    assert seen == []
    cgroups.apply({"": str(tmp_path / "unified")}, {"devices": []}, on_create=False)  # pure v2
    assert seen == [([], str(tmp_path / "unified"))]


def test_place_hybrid_includes_the_cgroup2_tree() -> None:
    own = {"memory": "/m", "devices": "/", "": "/"}
    mounts = {"memory": "/sys/fs/cgroup/memory", "devices": "/sys/fs/cgroup/devices",
              "": "/sys/fs/cgroup/unified"}
    assert cgroups.place("/pods/c1", own, mounts)[""] == "/sys/fs/cgroup/unified/pods/c1"
    assert cgroups.place("c1", own, mounts)["memory"] == "/sys/fs/cgroup/memory/m/c1"


def test_kernel_verifier_accepts_the_programs() -> None:
    """The one real load (cheap: no attach, nothing changes on the host)."""
    if os.geteuid() != 0:
        pytest.skip("loading a BPF program needs root (CAP_BPF); run as root to check")
    sc = L.syscalls()
    rng = random.Random(7)
    lists: list[list[DeviceRule]] = [[DENY_ALL], [{"allow": True, "access": "rwm"}]]
    lists += [r for r in (_random_rules(rng) for _ in range(20)) if _ok(r)]
    for rules in lists:
        fd = sc.bpf_prog_load(L.BPF_PROG_TYPE_CGROUP_DEVICE, v2dev.build(rules).assemble(),
                              v2dev.LICENSE, v2dev.PROG_NAME)
        try:
            assert sc.bpf_prog_info(fd)[0] == L.BPF_PROG_TYPE_CGROUP_DEVICE
        finally:
            os.close(fd)


def test_verifier_log_explains_a_refused_program() -> None:
    if os.geteuid() != 0:
        pytest.skip("loading a BPF program needs root (CAP_BPF); run as root to check")
    bad = bpf.Program().exit().assemble()  # r0 is never set
    with pytest.raises(OSError, match="verifier log"):
        L.syscalls().bpf_prog_load(L.BPF_PROG_TYPE_CGROUP_DEVICE, bad, "Apache")


def _ok(rules: list[DeviceRule]) -> bool:
    try:
        model.effective(rules)
    except InvalidArgument:
        return False
    return True


# --- v1 update: only the difference is written ---------------------------------------

def test_v1_listing_and_transition() -> None:
    from crid.oci.cgroups.v1 import devices as v1

    assert v1.current("a *:* rwm\n") is None
    have = v1.current("c 1:3 rwm\nc 10:229 rw\nc *:* m\n")
    assert have == {("c", 1, 3): M | R | W, ("c", 10, 229): R | W, ("c", -1, -1): M}
    want = {("c", 1, 3): M | R | W, ("c", 10, 237): R | W, ("c", -1, -1): M,
            ("c", 10, 229): R}
    assert v1.transition(have, want) == [("devices.allow", "c 10:237 rw"),
                                         ("devices.deny", "c 10:229 w")]


def test_v1_update_writes_the_difference_only(tmp_path: Path) -> None:
    from crid.oci.cgroups.v1 import devices as v1

    listing = [v1.rule(r) for r in model.DEFAULT_ALLOW] + ["c 10:229 rw"]
    (tmp_path / "devices.list").write_text("\n".join(listing) + "\n")
    v1.apply({"devices": [DENY_ALL, {"allow": True, "type": "c", "major": 10, "minor": 237,
                                     "access": "rw"}]}, str(tmp_path), on_create=False)
    assert (tmp_path / "devices.allow").read_text() == "c 10:237 rw"
    assert (tmp_path / "devices.deny").read_text() == "c 10:229 rw"  # never "a"
    (tmp_path / "devices.list").write_text("a *:* rwm\n")  # allow-all: replayed whole
    v1.apply({"devices": [DENY_ALL]}, str(tmp_path), on_create=False)
    assert (tmp_path / "devices.deny").read_text() == "a"
