"""A tiny eBPF assembler: the few instructions a cgroup device filter needs.

Each instruction is 8 bytes (``struct bpf_insn``): opcode, dst and src
registers in one byte (dst in the low nibble), a signed 16-bit offset and a
signed 32-bit immediate, little-endian (every architecture crid runs on).
Jumps name a label; :meth:`Program.assemble` turns labels into offsets
relative to the next instruction, as the kernel counts them. Pure logic, no
syscalls: loading is ``crid.oci.linux.Syscalls.bpf_prog_load``.
"""

from __future__ import annotations

# registers
R0, R1, R2, R3, R4, R5 = range(6)

# instruction classes, sizes, modes, operations, sources (linux/bpf_common.h, linux/bpf.h)
_LDX = 0x01
_ALU = 0x04  # 32-bit ALU: results are zero-extended to 64 bits
_JMP = 0x05
_W = 0x00
_MEM = 0x60
_K = 0x00  # immediate operand
_X = 0x08  # register operand
_AND = 0x50
_RSH = 0x70
_MOV = 0xB0
_JEQ = 0x10
_JNE = 0x50
_EXIT = 0x90

LDX_MEM_W = _LDX | _MEM | _W
AND32_K = _ALU | _AND | _K
RSH32_K = _ALU | _RSH | _K
MOV32_K = _ALU | _MOV | _K
MOV32_X = _ALU | _MOV | _X
JEQ_K = _JMP | _JEQ | _K
JNE_K = _JMP | _JNE | _K
JNE_X = _JMP | _JNE | _X
EXIT = _JMP | _EXIT

_NAMES = {LDX_MEM_W: "ldxw", AND32_K: "and32", RSH32_K: "rsh32", MOV32_K: "mov32",
          MOV32_X: "mov32", JEQ_K: "jeq", JNE_K: "jne", JNE_X: "jne", EXIT: "exit"}
_JUMPS = (JEQ_K, JNE_K, JNE_X)

Insn = tuple[int, int, int, int, int]  # opcode, dst, src, off, imm


class Program:
    """Instructions appended in order; a jump's target is a label set later (or earlier)."""

    def __init__(self) -> None:
        self.insns: list[tuple[int, int, int, int, int, str | None]] = []
        self.labels: dict[str, int] = {}

    def _add(self, op: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0,
             target: str | None = None) -> Program:
        if not -(1 << 31) <= imm < (1 << 31):
            raise ValueError(f"immediate {imm} does not fit in 32 signed bits")
        self.insns.append((op, dst, src, off, imm, target))
        return self

    def label(self, name: str) -> Program:
        if name in self.labels:
            raise ValueError(f"label {name!r} set twice")
        self.labels[name] = len(self.insns)
        return self

    def ldx_w(self, dst: int, src: int, off: int) -> Program:
        """dst = *(u32 *)(src + off)"""
        return self._add(LDX_MEM_W, dst, src, off)

    def and32(self, dst: int, imm: int) -> Program:
        return self._add(AND32_K, dst, imm=imm)

    def rsh32(self, dst: int, imm: int) -> Program:
        return self._add(RSH32_K, dst, imm=imm)

    def mov32(self, dst: int, imm: int) -> Program:
        return self._add(MOV32_K, dst, imm=imm)

    def mov32_reg(self, dst: int, src: int) -> Program:
        return self._add(MOV32_X, dst, src)

    def jeq(self, dst: int, imm: int, target: str) -> Program:
        return self._add(JEQ_K, dst, imm=imm, target=target)

    def jne(self, dst: int, imm: int, target: str) -> Program:
        return self._add(JNE_K, dst, imm=imm, target=target)

    def jne_reg(self, dst: int, src: int, target: str) -> Program:
        return self._add(JNE_X, dst, src, target=target)

    def exit(self) -> Program:
        return self._add(EXIT)

    def resolved(self) -> list[Insn]:
        """The instructions with every jump's label turned into its offset."""
        out: list[Insn] = []
        for pc, (op, dst, src, off, imm, target) in enumerate(self.insns):
            if target is not None:
                if target not in self.labels:
                    raise ValueError(f"jump to unknown label {target!r}")
                off = self.labels[target] - (pc + 1)
                if off < 0:
                    raise ValueError(f"backward jump to {target!r}: the verifier refuses loops")
                if off >= 1 << 15:
                    raise ValueError(f"jump to {target!r} is too far ({off} instructions)")
            out.append((op, dst, src, off, imm))
        return out

    def assemble(self) -> bytes:
        return b"".join(encode(i) for i in self.resolved())

    def listing(self) -> list[str]:
        """Readable lines, one per instruction (for tests and error messages)."""
        return [disassemble(i) for i in self.resolved()]


def encode(insn: Insn) -> bytes:
    op, dst, src, off, imm = insn
    return (bytes((op, (src << 4) | dst)) + off.to_bytes(2, "little", signed=True)
            + imm.to_bytes(4, "little", signed=True))


def decode(raw: bytes) -> list[Insn]:
    out = []
    for i in range(0, len(raw), 8):
        b = raw[i:i + 8]
        out.append((b[0], b[1] & 0xF, b[1] >> 4, int.from_bytes(b[2:4], "little", signed=True),
                    int.from_bytes(b[4:8], "little", signed=True)))
    return out


def disassemble(insn: Insn) -> str:
    op, dst, src, off, imm = insn
    name = _NAMES.get(op, f"op{op:#04x}")
    if op == EXIT:
        return name
    if op == LDX_MEM_W:
        return f"{name} r{dst}, [r{src}{off:+d}]"
    operand = f"r{src}" if op & _X else f"{imm:#x}"
    if op in _JUMPS:
        return f"{name} r{dst}, {operand}, {off:+d}"
    return f"{name} r{dst}, {operand}"
