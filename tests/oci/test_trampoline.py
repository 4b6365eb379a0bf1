"""The exec trampoline (crid.oci.trampoline), run for real in a forked child:
argv, env and fds reach the program unchanged, a failed execve is reported
with its errno, a '#!/proc/self/exe' script cannot re-enter it, the memfd is
sealed, and the machine code is what its listing says."""

from __future__ import annotations

import marshal
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from crid.oci import linux as L
from crid.oci import sync, trampoline

pytestmark = pytest.mark.skipif(not trampoline.SUPPORTED, reason="x86-64 only")

F_GET_SEALS = 1034


def run(path: str, args: list[str], env: dict[str, str], *,
        stdout: int | None = None, status: int = 127) -> tuple[int, dict[str, str] | None]:
    """Exec ``path`` through the trampoline in a child: (exit code, the
    failure report or None)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            if stdout is not None:
                os.dup2(stdout, 1)
            tmpl = sync.message({"exec_errno": "000", "path": path})
            fd = trampoline.prepare(path, w, tmpl, tmpl.find(b"000"), status)
            trampoline.run(fd, path, args, env, w)
        finally:
            os._exit(99)
    os.close(w)
    data = b""
    while chunk := os.read(r, 4096):
        data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    msg = None
    if data:
        assert int.from_bytes(data[:4], "little") == len(data) - 4
        msg = marshal.loads(data[4:])
    return os.waitstatus_to_exitcode(status), msg


def test_program_gets_argv_env_and_fds_unchanged(tmp_path: Path) -> None:
    out = tmp_path / "out"
    keep = os.open(os.devnull, os.O_RDONLY)  # inheritable: a preserved fd
    os.set_inheritable(keep, True)
    cmd = (f'cat /proc/$$/cmdline > {tmp_path}/argv; echo "$X|$(readlink /proc/$$/fd/{keep})"; '
           'ls /proc/$$/fd')
    try:
        with open(out, "w") as f:
            code, msg = run("/bin/sh", ["argv-zero", "-c", cmd, "one"],
                            {"X": "y z", "PATH": "/bin:/usr/bin"}, stdout=f.fileno())
    finally:
        os.close(keep)
    assert (code, msg) == (0, None)
    assert (tmp_path / "argv").read_bytes() == f"argv-zero\0-c\0{cmd}\0one\0".encode()
    first, fds = out.read_text().split("\n", 1)
    assert first == "y z|/dev/null"
    assert str(keep) in fds.split()


def test_failed_execve_is_reported_with_its_errno(tmp_path: Path) -> None:
    code, msg = run(str(tmp_path / "missing"), ["x"], {})
    assert code == trampoline.EXIT_FAILED
    assert msg == {"exec_errno": "002", "path": str(tmp_path / "missing")}  # ENOENT
    plain = tmp_path / "plain"
    plain.write_text("not a program\n")
    plain.chmod(0o644)
    code, msg = run(str(plain), ["x"], {})
    assert (code, msg) == (127, {"exec_errno": "013", "path": str(plain)})  # EACCES
    code, msg = run(str(plain), ["x"], {}, status=1)  # as init exits
    assert (code, msg) == (1, {"exec_errno": "013", "path": str(plain)})


def test_proc_self_exe_script_cannot_reenter(tmp_path: Path) -> None:
    script = tmp_path / "evil.sh"
    script.write_text("#!/proc/self/exe\n")
    script.chmod(0o755)
    code, msg = run(str(script), [str(script)], {})
    # Refused (ELOOP) on re-entry, after the report fd closed on the first execve.
    assert (code, msg) == (127, None)


def test_memfd_is_sealed_against_writes() -> None:
    fd = trampoline.sealed(trampoline.image("/bin/true"))
    try:
        assert L.syscalls().fcntl(fd, F_GET_SEALS) == trampoline.SEALS
        with pytest.raises(PermissionError):
            os.write(fd, b"x")
        w = os.open(f"/proc/self/fd/{fd}", os.O_WRONLY)
        try:
            with pytest.raises(PermissionError):
                os.pwrite(w, b"\x7f", 0)
        finally:
            os.close(w)
    finally:
        os.close(fd)


def test_image_refuses_what_it_cannot_carry() -> None:
    with pytest.raises(ValueError):
        trampoline.image("/bin/a\0b")
    with pytest.raises(ValueError):
        trampoline.image("/bin/true", 3, b"x" * (trampoline.MAX_TEMPLATE + 1), 0)
    with pytest.raises(ValueError):
        trampoline.image("/bin/true", 3, b"ab", 0)  # no room for three digits
    img = trampoline.image("/bin/true")
    assert img[:4] == b"\x7fELF" and len(img) < 1024
    assert img[trampoline.ENTRY:trampoline.ENTRY + len(trampoline.CODE)] == trampoline.CODE
    assert trampoline.ENTRY + len(trampoline.CODE) <= trampoline.DATA


@pytest.mark.skipif(shutil.which("as") is None or shutil.which("objcopy") is None,
                    reason="needs binutils")
def test_code_is_its_listing(tmp_path: Path) -> None:
    doc = trampoline.__doc__ or ""
    listing = doc.split("compares)::\n", 1)[1]
    base = trampoline.BASE + trampoline.DATA
    source = re.sub(r"DATA\+(\d+)", lambda m: hex(base + int(m.group(1))), listing)
    (tmp_path / "t.s").write_text(".intel_syntax noprefix\n.globl _start\n" + source)
    subprocess.run(["as", "-o", str(tmp_path / "t.o"), str(tmp_path / "t.s")], check=True)
    subprocess.run(["objcopy", "-O", "binary", "-j", ".text", str(tmp_path / "t.o"),
                    str(tmp_path / "t.bin")], check=True)
    assert (tmp_path / "t.bin").read_bytes() == trampoline.CODE
