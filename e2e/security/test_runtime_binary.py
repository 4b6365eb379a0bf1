"""Issue 14, hole 3: the host interpreter is not writable from a container
(the CVE-2019-5736 class).

crid-runtime is the host's Python until its final execve. In runc's 2019
breakout a container's program was a script starting ``#!/proc/self/exe``:
the kernel resolved /proc/self/exe in the runtime's process and ran the
runtime's own binary inside the container; a process there held
/proc/<pid>/exe (O_PATH), waited for that process to end, reopened the
handle for writing through /proc/self/fd/N and replaced the host binary.
The same handle could be grabbed from the runtime itself while it joined
the container.

Each test performs the attack for real with a static attacker
(``exe_probe.c``, built with gcc at test time) as the container's init,
which spins on /proc/<pid>/exe of the pids the runtime's process will get:

- ``#!/proc/self/exe`` exec'd into the container: the attacker must obtain
  a handle (else the test fails: it proves nothing), and reopening it for
  writing after the process ended must fail. Under crid the handle is the
  sealed memfd of the trampoline (open succeeds, write: EPERM); under
  Debian's runc 1.1.5 it is runc's read-only bind mount of its own binary
  on a detached mount (exe reads "/", open for writing: EROFS). Which one
  is recorded (``record_property``);
- while the runtime joins the container for ``exec``, its process is
  refused (EACCES: non-dumpable) for /proc/<pid>/exe and /proc/<pid>/maps,
  and no exe ever seen is a host file;
- a container whose entrypoint is ``#!/proc/self/exe``: crid's init is out
  of reach before start (runc's is reachable, but as its read-only bind
  mount), and what runs after is never the host's binary.

Every test checks, before and after, that the host interpreter (the real
path of ``sys.executable``, and its libpython), the ``crid-runtime`` launcher,
the runtime's own Python files and runc's binary are byte-identical
(sha256). The attacker never writes anything but the byte already there.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import crid.oci
import pytest

from e2e.fixtures.bundle import RUNTIMES, Bundle, Runtime
from e2e.security.cri_spec import compile_static

HERE = Path(__file__).resolve().parent

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


def host_binaries() -> list[Path]:
    """What a breakout would overwrite: the host interpreter, its libpython,
    crid-runtime's launcher and package files, runc."""
    python = Path(os.path.realpath(sys.executable))
    files = {python, Path(os.path.realpath(RUNTIMES["crid-runtime"])),
             Path(os.path.realpath(RUNTIMES["runc"]))}
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split(maxsplit=5)[5].strip() if len(line.split()) > 5 else ""
            if "libpython" in path:
                files.add(Path(os.path.realpath(path)))
    pkg = Path(os.path.realpath(os.path.dirname(crid.oci.__file__)))
    files.update(Path(os.path.realpath(p)) for p in pkg.rglob("*.py"))
    launcher = Path(RUNTIMES["crid-runtime"]).read_text()
    first = launcher.split("\n", 1)[0]
    assert first.startswith("#!"), "crid-runtime is not a script?"
    files.add(Path(os.path.realpath(first[2:].split()[0])))  # the launcher's interpreter
    return sorted(files)


def digests(files: list[Path]) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture
def unchanged_host() -> Iterator[list[Path]]:
    files = host_binaries()
    before = digests(files)
    yield files
    after = digests(files)
    changed = [p for p in files if before[str(p)] != after[str(p)]]
    assert not changed, f"a container changed host binaries: {changed}"


@pytest.fixture(scope="module")
def exe_probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_static(HERE / "exe_probe.c", tmp_path_factory.mktemp("probe") / "exe_probe")


def runnable_inside(rootfs: Path, binary: str) -> None:
    """Copy ``binary``'s loader and libraries to the same paths in ``rootfs``,
    as an attacker's image would: a runtime binary that the kernel runs in the
    container through #!/proc/self/exe must start there, or no process ever
    holds it and the attack proves nothing (runc is dynamically linked)."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        path = next((w for w in line.split() if w.startswith("/")), None)
        if path:
            dest = rootfs / path.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(os.path.realpath(path), dest)


@pytest.fixture
def attack_bundle(bundle: Bundle, exe_probe: Path, runtime: Runtime) -> Bundle:
    shutil.copy2(exe_probe, bundle.rootfs / "bin" / "exe_probe")
    if runtime.name == "runc":
        runnable_inside(bundle.rootfs, RUNTIMES["runc"])
    entry = bundle.rootfs / "entry.sh"
    entry.write_text("#!/proc/self/exe\n")
    entry.chmod(0o755)
    return bundle


def report(path: Path, timeout: float = 30) -> tuple[dict[str, str], list[str]]:
    """The probe's ``key=value`` lines once it printed "done" (a dict of the
    last values, and every exe it saw)."""
    deadline = time.monotonic() + timeout
    while "done" not in path.read_text():
        assert time.monotonic() < deadline, f"the attacker never finished: {path.read_text()}"
        time.sleep(0.02)
    lines = [ln.split("=", 1) for ln in path.read_text().splitlines() if "=" in ln]
    return dict(lines), [v for k, v in lines if k == "exe"]


def attack(runtime: Runtime, bundle: Bundle, mode: str, *program: str,
           enough: Callable[[dict[str, str]], bool] = lambda f: f.get("exe") != "none",
           tries: int = 20) -> tuple[dict[str, str], list[str], subprocess.CompletedProcess[str]]:
    """Start the attacker as a container's init, exec ``program`` into it, and
    return the attacker's report. The window it must hit can be short (the
    trampoline lives for tens of microseconds, and this machine has two
    cores): a try that did not get ``enough`` is repeated with a new
    container, up to ``tries`` times (a miss ends a try at once)."""
    for _ in range(tries):
        bundle.write(["/bin/exe_probe", mode])
        cid = runtime.create(bundle)
        runtime("start", cid, check=True)
        out = bundle.path / f"{cid}.out"
        deadline = time.monotonic() + 10
        while "watching=" not in out.read_text():
            assert time.monotonic() < deadline, (bundle.path / f"{cid}.err").read_text()
            time.sleep(0.01)
        r = runtime("exec", cid, *program, timeout=30)
        facts, seen = report(out)
        runtime("delete", "--force", cid)
        if enough(facts):
            break
    return facts, seen, r


def host_file(exe: str, files: list[Path]) -> bool:
    """Whether an exe seen from inside is one of the host's binaries (a path
    outside the container's root reads as its host path)."""
    return exe in {str(p) for p in files} or exe.startswith(str(Path(sys.prefix)))


def test_proc_self_exe_script_cannot_rewrite_the_runtime(
        runtime: Runtime, attack_bundle: Bundle, unchanged_host: list[Path],
        record_property: Callable[[str, object], None]) -> None:
    facts, _, r = attack(runtime, attack_bundle, "race", "/entry.sh")
    record_property("attack", facts)
    print(f"{runtime.name}: exec rc={r.returncode} {r.stderr.strip()!r} {facts}")
    # Non-vacuous: the attacker held the exec'd process's exe and tried to write.
    assert facts["exe"] != "none", f"{runtime.name}: the attacker never got a handle: {facts}"
    assert facts["exited"] == "1", facts
    assert not host_file(facts["exe"], unchanged_host), (
        f"{runtime.name}: a container held the host binary {facts['exe']}")
    assert facts["open_w"] != "ok" or facts.get("write") not in (None, "ok"), (
        f"{runtime.name}: the attacker wrote to {facts['exe']}")
    refusal = facts["open_w"] if facts["open_w"] != "ok" else facts["write"]
    assert refusal in ("EPERM", "ETXTBSY", "EROFS", "EACCES"), facts
    if runtime.name == "runc":
        # Debian's runc 1.1.5 runs itself from a read-only bind mount of its
        # binary on a detached mount (its exe reads "/"), or from a sealed memfd.
        # (ETXTBSY first while any runc still runs the same inode).
        assert ((facts["exe"] == "/" and refusal in ("EROFS", "ETXTBSY"))
                or facts["exe"].startswith("/memfd:")), facts
    if runtime.name == "crid-runtime":
        assert facts["exe"].startswith("/memfd:crid-exec"), facts
        assert facts["open_w"] == "ok" and facts["write"] == "EPERM", facts  # sealed
        # The trampoline saw itself re-entered through /proc/self/exe and refused.
        assert r.returncode == 127, r.stderr


def test_runtime_joining_for_exec_is_out_of_reach(
        runtime: Runtime, attack_bundle: Bundle, unchanged_host: list[Path],
        record_property: Callable[[str, object], None]) -> None:
    def enough(f: dict[str, str]) -> bool:
        if runtime.name == "runc":
            return f.get("exe") != "none"
        return int(f.get("denied", 0)) > 0 and int(f.get("maps_denied", 0)) > 0

    facts, seen, r = attack(runtime, attack_bundle, "observe", "/bin/sleep", "0.2",
                            enough=enough)
    assert r.returncode == 0, r.stderr
    record_property("attack", facts)
    print(f"{runtime.name}: {facts} seen={seen}")
    assert seen and seen[0] != "none", f"{runtime.name}: the attacker never got a handle"
    for exe in seen:
        assert not host_file(exe, unchanged_host), (
            f"{runtime.name}: a container reached the runtime's binary {exe}")
        # the sealed trampoline (or runc's sealed clone or read-only bind
        # mount of itself, which reads "/"), then the program
        assert exe.startswith("/memfd:") or exe in ("/bin/busybox", "/"), seen
    assert facts["maps_leak"] == "0", facts
    if runtime.name == "crid-runtime":
        # Non-vacuous: the attacker raced the runtime's own process in the
        # container (Python until the trampoline) and was refused both files.
        assert int(facts["denied"]) > 0, facts
        assert int(facts["maps_denied"]) > 0, facts


def test_entrypoint_proc_self_exe_never_runs_the_host_binary(
        runtime: Runtime, attack_bundle: Bundle, unchanged_host: list[Path],
        record_property: Callable[[str, object], None]) -> None:
    attack_bundle.write(["/entry.sh"])
    cid = runtime.create(attack_bundle)
    # The attacker is exec'd into the created container and spins on its init.
    probe_out = attack_bundle.path / "probe.out"
    with open(probe_out, "w") as f:
        subprocess.run(runtime.cmd("exec", "--detach", cid, "/bin/exe_probe", "race", "1"),
                       stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                       timeout=30, check=True)
    deadline = time.monotonic() + 10
    while "watching=" not in probe_out.read_text():
        assert time.monotonic() < deadline, probe_out.read_text()
        time.sleep(0.01)
    time.sleep(0.2)  # let it spin against the runtime's init first
    runtime("start", cid, check=True)
    deadline = time.monotonic() + 20
    while runtime.state(cid)["status"] != "stopped":
        assert time.monotonic() < deadline, "the container did not end"
        time.sleep(0.02)
    text = probe_out.read_text()
    facts = dict(ln.split("=", 1) for ln in text.splitlines() if "=" in ln)
    record_property("attack", facts)
    print(f"{runtime.name}: {facts}")
    exe = facts.get("exe")
    if runtime.name == "crid-runtime":
        # Non-vacuous: it spun against the runtime's init, and was refused
        # (it dies with the init; a handle caught in the trampoline's
        # microseconds, if any, is the sealed memfd).
        assert facts.get("denied_pid") == "1", f"the attacker never raced the init: {text}"
        assert exe is None or exe.startswith("/memfd:crid-exec"), text
    else:
        # runc's init is reachable, but its exe is its read-only bind mount
        # (reads "/") or a sealed memfd, never the host's runc.
        assert facts.get("denied_pid") == "1" or exe is not None, text
    if exe is not None:
        assert not host_file(exe, unchanged_host), f"{runtime.name}: reached {exe}"
        assert facts.get("open_w") != "ok" or exe.startswith("/memfd:"), facts
