"""The last exec: through a sealed, in-memory trampoline, never as the host's Python.

crid-runtime is the host's Python until its final execve. Were that execve
the container's program directly, a program that is a script starting
``#!/proc/self/exe`` would make the kernel run the runtime's own binary (the
host interpreter) inside the container, and a process there could then hold
``/proc/<pid>/exe`` and, once that process exits, reopen it for writing and
replace the host's Python (CVE-2019-5736, the runc breakout of 2019).

So the runtime execs this trampoline instead: a static x86-64 ELF of a few
hundred bytes, written here into a memfd sealed against every change
(F_SEAL_SEAL|F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_WRITE) and run with
``execveat(fd, "", argv, envp, AT_EMPTY_PATH)`` (``os.execve(fd, ...)``).
It calls ``execve(target, argv, envp)`` with its argv and environment
untouched, so the program gets argv[0], env and fds exactly as before.
During that execve ``/proc/self/exe`` is the sealed memfd: a script's
``#!/proc/self/exe`` lands in the trampoline again, which sees its own
target as the name it was exec'd by (AT_EXECFN) and refuses (ELOOP) instead
of looping. A handle on the memfd cannot be opened for writing (EPERM), and
it is no host file.

The target path, and where and how to report a failed execve, are written
into the image: before its execve the trampoline marks the report fd
close-on-exec (success is EOF, as before; where a seccomp profile refuses
fcntl it closes the fd and reports nothing), and on failure it writes a
template with the errno's three digits filled in to that fd and exits
(127 unless told otherwise; init exits 1, as it did before and runc's does).
The memfd is made before the seccomp filter is loaded (``prepare``), and
exec'd after (``run``): through execveat, or /proc/self/fd/N where a
profile refuses execveat.

Elsewhere than x86-64 (or where the kernel refuses an executable memfd, or
a seccomp profile loaded before no_new_privs refuses making one) the
runtime execs the program directly, as before, protected only by being
non-dumpable until then.

The code, assembled with GNU as (``as t.s && objcopy -O binary -j .text``);
DATA is 0x400200, where ``image`` puts the parameters (u64 address of the
target path, u64 address of the failure template, u32 its length, u32 the
offset of its three digits, i32 the report fd or -1, u32 the exit status
after a failure); tests/oci/test_trampoline.py assembles what follows and
compares)::

    _start:
            mov     rbx, [rsp]                      # argc
            lea     r12, [rsp+8]                    # argv
            lea     r13, [r12+rbx*8+8]              # envp
            mov     rcx, r13
    1:      mov     rax, [rcx]                      # skip envp to auxv
            add     rcx, 8
            test    rax, rax
            jnz     1b
    2:      mov     rax, [rcx]                      # find AT_EXECFN (31)
            test    rax, rax
            jz      go
            add     rcx, 16
            cmp     rax, 31
            jne     2b
            mov     rsi, [rcx-8]                    # the name execve was given
            mov     rdi, [DATA+0]                   # our target
    3:      mov     al, [rsi]                       # equal: we were re-entered through
            cmp     al, [rdi]                       # /proc/self/exe by the target itself
            jne     go
            inc     rsi
            inc     rdi
            test    al, al
            jnz     3b
            mov     r15, -1                         # (nothing to report to now)
            mov     eax, 40                         # ELOOP
            jmp     fail
    go:     movsxd  r15, dword ptr [DATA+24]        # fcntl(errfd, F_SETFD, FD_CLOEXEC)
            test    r15d, r15d
            js      4f
            mov     eax, 72
            mov     rdi, r15
            mov     esi, 2
            mov     edx, 1
            syscall
            test    rax, rax
            jz      4f
            mov     eax, 3                          # refused (seccomp): close it instead,
            mov     rdi, r15                        # and report nothing
            syscall
            mov     r15, -1
    4:      mov     eax, 59                         # execve(target, argv, envp)
            mov     rdi, [DATA+0]
            mov     rsi, r12
            mov     rdx, r13
            syscall
            neg     eax                             # errno
    fail:   mov     r14d, eax
            test    r15d, r15d
            js      out
            sub     rsp, 4096                       # the message, with the errno's digits
            mov     rsi, [DATA+8]
            mov     ecx, dword ptr [DATA+16]
            mov     rdx, rcx
            mov     rdi, rsp
            rep movsb
            mov     edi, dword ptr [DATA+20]
            add     rdi, rsp
            mov     eax, r14d
            mov     ecx, 10
            xor     edx, edx
            div     ecx
            add     dl, 48
            mov     [rdi+2], dl
            xor     edx, edx
            div     ecx
            add     dl, 48
            mov     [rdi+1], dl
            xor     edx, edx
            div     ecx
            add     dl, 48
            mov     [rdi], dl
            mov     eax, 1                          # write(errfd, msg, len)
            mov     rdi, r15
            mov     rsi, rsp
            mov     edx, dword ptr [DATA+16]
            syscall
    out:    mov     eax, 231                        # exit_group(status)
            mov     edi, dword ptr [DATA+28]
            syscall
"""

from __future__ import annotations

import os

from crid.oci import linux as L

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from typing import NoReturn

CODE = bytes.fromhex(
    "488b1c244c8d6424084d8d6cdc084c89e9488b014883c108"
    "4885c075f4488b014885c074344883c1104883f81f75ee48"
    "8b71f8488b3c25000240008a063a07751848ffc648ffc784"
    "c075f049c7c7ffffffffb828000000eb4e4c633c25180240"
    "004585ff782ab8480000004c89ffbe02000000ba01000000"
    "0f054885c07411b8030000004c89ff0f0549c7c7ffffffff"
    "b83b000000488b3c25000240004c89e64c89ea0f05f7d841"
    "89c64585ff78614881ec00100000488b3425080240008b0c"
    "25100240004889ca4889e7f3a48b3c25140240004801e744"
    "89f0b90a00000031d2f7f180c23088570231d2f7f180c230"
    "88570131d2f7f180c2308817b8010000004c89ff4889e68b"
    "1425100240000f05b8e70000008b3c251c0240000f05"
)
BASE = 0x400000
ENTRY = 64 + 2 * 56  # after the ELF header and two program headers
DATA = 0x200  # the parameters' offset, which the code names as BASE + DATA
MAX_TEMPLATE = 4096  # the code copies the template onto its stack
EXIT_FAILED = 127
SUPPORTED = os.uname().machine == "x86_64" and hasattr(os, "memfd_create")

_MFD_CLOEXEC = 0x1
_MFD_ALLOW_SEALING = 0x2
_MFD_EXEC = 0x10  # say so where vm.memfd_noexec would make it non-executable
_F_ADD_SEALS = 1033
_F_SEAL_SEAL, _F_SEAL_SHRINK, _F_SEAL_GROW, _F_SEAL_WRITE = 0x1, 0x2, 0x4, 0x8
SEALS = _F_SEAL_SEAL | _F_SEAL_SHRINK | _F_SEAL_GROW | _F_SEAL_WRITE


def _u(n: int, size: int) -> bytes:
    return n.to_bytes(size, "little", signed=n < 0)


def image(target: str, errfd: int = -1, template: bytes = b"", digits: int = 0,
          status: int = EXIT_FAILED) -> bytes:
    """The trampoline for one execve of ``target``: on failure it writes
    ``template`` to ``errfd`` with the errno's three decimal digits at
    ``digits``, then exits with ``status`` (errfd -1: it only exits)."""
    if len(template) > MAX_TEMPLATE or (template and not 0 <= digits <= len(template) - 3):
        raise ValueError("trampoline: bad failure template")
    path = os.fsencode(target)
    if b"\0" in path:
        raise ValueError("trampoline: NUL in the target path")
    tmpl_at = DATA + 32
    path_at = tmpl_at + len(template)
    total = path_at + len(path) + 1
    ehdr = (b"\x7fELF\x02\x01\x01" + bytes(9)
            + _u(2, 2) + _u(0x3E, 2) + _u(1, 4)            # ET_EXEC, x86-64, version
            + _u(BASE + ENTRY, 8) + _u(64, 8) + _u(0, 8)   # entry, phoff, shoff
            + _u(0, 4) + _u(64, 2) + _u(56, 2) + _u(2, 2)  # flags, ehsize, phentsize, phnum
            + _u(64, 2) + _u(0, 2) + _u(0, 2))             # shentsize, shnum, shstrndx
    load = (_u(1, 4) + _u(5, 4) + _u(0, 8) + _u(BASE, 8) + _u(BASE, 8)  # PT_LOAD, R+X
            + _u(total, 8) + _u(total, 8) + _u(0x1000, 8))
    stack = _u(0x6474E551, 4) + _u(6, 4) + bytes(48)  # PT_GNU_STACK, RW: no executable stack
    head = ehdr + load + stack + CODE
    params = (_u(BASE + path_at, 8) + _u(BASE + tmpl_at, 8) + _u(len(template), 4)
              + _u(digits, 4) + _u(errfd, 4) + _u(status & 0xFF, 4))
    return head + bytes(DATA - len(head)) + params + template + path + b"\0"


def sealed(img: bytes) -> int:
    """A close-on-exec memfd holding ``img``, sealed against any change."""
    try:
        fd = os.memfd_create("crid-exec", _MFD_CLOEXEC | _MFD_ALLOW_SEALING | _MFD_EXEC)
    except OSError:  # a kernel older than MFD_EXEC (6.3)
        fd = os.memfd_create("crid-exec", _MFD_CLOEXEC | _MFD_ALLOW_SEALING)
    try:
        view = memoryview(img)
        while view:
            view = view[os.write(fd, view):]
        L.syscalls().fcntl(fd, _F_ADD_SEALS, SEALS)
    except BaseException:
        os.close(fd)
        raise
    return fd


def prepare(path: str, errfd: int = -1, template: bytes = b"", digits: int = 0,
            status: int = EXIT_FAILED) -> int:
    """The sealed trampoline that will exec ``path`` (-1 where unsupported);
    ``errfd`` is passed on whether close-on-exec or not, and closed by the
    trampoline when the program's execve succeeds."""
    if not SUPPORTED:
        return -1
    img = image(path, errfd, template, digits, status)
    try:
        return sealed(img)
    except OSError:
        # A seccomp profile loaded early (without no_new_privs) that refuses
        # memfd_create, write or fcntl: exec directly, as before.
        return -1


def run(fd: int, path: str, args: list[str], env: dict[str, str], errfd: int = -1) -> NoReturn:
    """Replace this process with ``path`` through the trampoline ``fd`` from
    ``prepare`` (directly when it is -1). Raises OSError when not even the
    trampoline could be exec'd."""
    if fd < 0:
        os.execve(path, args, env)
    if errfd >= 0:
        os.set_inheritable(errfd, True)
    try:
        os.execve(fd, args, env)  # fexecve: execveat(fd, "", ..., AT_EMPTY_PATH)
    except OSError:
        os.execve(f"/proc/self/fd/{fd}", args, env)  # where execveat is filtered
