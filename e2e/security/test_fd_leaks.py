"""Issue 14, hole 4: no host fd or cwd reaches the container
(the CVE-2024-21626 class).

In runc < 1.1.12 the container's init held an fd of the host's
/sys/fs/cgroup when it did chdir(process.cwd); a cwd of /proc/self/fd/7
(or an exec'd binary /proc/self/fd/7/../../..) then put the container's
first process in a host directory: full read/write access to the host's
filesystem. The runtime's duty is twofold, and both are checked here by
performing the attack:

- the container's first process (and an exec'd one) holds exactly the
  stdio it was given and nothing else: every fd is compared, as seen from
  the host through /proc/<pid>/fd, with the very files we handed the
  runtime; from inside, a static probe (``fd_probe.c``, built with gcc at
  test time, opens nothing itself) lists the fds and getcwd() it inherited;
- a ``process.cwd`` (or ``exec --cwd``) of /proc/self/fd/N that leads
  outside the container's root is refused before any process of the
  container runs, whether N is one of the runtime's own fds or a host
  directory passed with ``--preserve-fds`` (the worst case: a directory
  fd is certainly there).

The config is crid's own: ``build_spec`` writes it from a CRI request.
Both handlers run every test: Debian's runc 1.1.5+ds1-1+deb12u1 on these
machines carries the CVE-2024-21626 fix (its changelog says so), unlike
upstream runc 1.1.5; it answers "current working directory is outside of
container mount namespace root". The messages are not compared across
runtimes; crid-runtime's must say what was refused and why.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest
from cri_api.v1 import api_pb2

from e2e.fixtures.bundle import Bundle, Runtime
from e2e.security.cri_spec import compile_static, cri_config

HERE = Path(__file__).resolve().parent
PLAIN = api_pb2.LinuxContainerSecurityContext(run_as_user=api_pb2.Int64Value(value=0))

@pytest.fixture(scope="module")
def fd_probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_static(HERE / "fd_probe.c", tmp_path_factory.mktemp("probe") / "fd_probe")


@pytest.fixture
def probe_bundle(bundle: Bundle, fd_probe: Path) -> Bundle:
    shutil.copy2(fd_probe, bundle.rootfs / "bin" / "fd_probe")
    return bundle


@pytest.fixture
def host_dirs(tmp_path: Path) -> list[Path]:
    """Host directories the attack would land in: fd 3..10 when preserved."""
    dirs = [tmp_path / f"host-dir-{fd}" for fd in range(3, 11)]
    for d in dirs:
        d.mkdir()
    return dirs


def with_fds(dirs: list[Path], cmd: list[str]) -> list[str]:
    """``cmd`` run with ``dirs`` open as fds 3, 4, ... (as a caller would pass them)."""
    redirects = " ".join(f'{3 + i}<"${i + 1}"' for i in range(len(dirs)))
    # bash, not dash: dash redirects only fds 0-9.
    return ["bash", "-c", f'exec {redirects}; shift {len(dirs)}; exec "$@"', "bash",
            *map(str, dirs), *cmd]


def probe_output(text: str) -> tuple[dict[int, str], str]:
    """(fd -> link, cwd) from fd_probe's output; cwd is "!errno" if getcwd failed."""
    fds, cwd = {}, ""
    for line in text.splitlines():
        if line.startswith("fd="):
            number, _, link = line[3:].partition(" ")
            fds[int(number)] = link
        elif line.startswith("cwd="):
            cwd = line[4:]
        elif line.startswith("cwd!="):
            cwd = "!" + line[5:]
    return fds, cwd


def identity(st: os.stat_result) -> tuple[int, int]:
    """The file itself; for a device node, the device (runc reopens a host
    /dev/null stdin as the container's own /dev/null: another node, same device)."""
    if stat.S_ISCHR(st.st_mode):
        return -1, st.st_rdev
    return st.st_dev, st.st_ino


def foreign_fds(pid: int, stdio: dict[int, Path]) -> list[str]:
    """What /proc/<pid>/fd holds, from the host, beyond the very stdio files
    we gave: each extra fd described (a host directory, the runtime's state,
    the cgroup tree...). Empty means nothing reached the container."""
    problems = []
    for name in sorted(os.listdir(f"/proc/{pid}/fd"), key=int):
        fd, link = int(name), f"/proc/{pid}/fd/{name}"
        try:
            target, st = os.readlink(link), os.stat(link)
        except FileNotFoundError:
            continue
        if fd in stdio and identity(st) == identity(os.stat(stdio[fd])):
            continue
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not the stdio we gave"
        if target.startswith("/sys/fs/cgroup"):
            kind = "the host's cgroup tree"
        problems.append(f"fd {fd} -> {target}: {kind}")
    return problems


def start_probe(runtime: Runtime, bundle: Bundle, cid: str, create: list[str]) -> int:
    """``create`` (a full command line) the container, start it, wait for the
    probe's report; return the pid of its first process."""
    outp, errp = bundle.path / f"{cid}.out", bundle.path / f"{cid}.err"
    with open(outp, "w") as out, open(errp, "w") as err:
        r = subprocess.run(create, stdin=subprocess.DEVNULL, stdout=out, stderr=err, timeout=30)
    assert r.returncode == 0, errp.read_text()
    pid = int(runtime.state(cid)["pid"])
    runtime("start", cid, check=True)
    deadline = time.monotonic() + 10
    while "done" not in outp.read_text():
        assert time.monotonic() < deadline, f"{runtime.name}: no report: {errp.read_text()}"
        time.sleep(0.02)
    # Non-vacuous: this pid is the container's probe, in its own mount namespace.
    assert Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"/bin/fd_probe")
    assert os.stat(f"/proc/{pid}/ns/mnt").st_ino != os.stat("/proc/self/ns/mnt").st_ino
    assert identity(os.stat(f"/proc/{pid}/root")) == identity(os.stat(bundle.rootfs))
    return pid


def test_first_process_holds_only_its_stdio(runtime: Runtime, probe_bundle: Bundle) -> None:
    b = probe_bundle
    cri_config(b, ["/bin/fd_probe", "wait"], PLAIN, working_dir="/root")
    cid = runtime.new_id()
    pid = start_probe(runtime, b, cid, runtime.cmd("create", "--bundle", str(b.path), cid))
    stdio = {0: Path("/dev/null"), 1: b.path / f"{cid}.out", 2: b.path / f"{cid}.err"}
    assert foreign_fds(pid, stdio) == [], runtime.name
    assert sorted(os.listdir(f"/proc/{pid}/fd"), key=int) == ["0", "1", "2"]
    assert identity(os.stat(f"/proc/{pid}/cwd")) == identity(os.stat(b.rootfs / "root"))
    inside, cwd = probe_output((b.path / f"{cid}.out").read_text())
    assert sorted(inside) == [0, 1, 2], (runtime.name, inside)
    assert cwd == "/root", runtime.name
    runtime("kill", cid, "KILL")


def test_a_preserved_host_directory_is_seen(runtime: Runtime, probe_bundle: Bundle,
                                            host_dirs: list[Path]) -> None:
    """Control: the checks above see a host directory fd when there is one
    (here passed on purpose with --preserve-fds), so their silence means something."""
    b = probe_bundle
    cri_config(b, ["/bin/fd_probe", "wait"], PLAIN)
    cid = runtime.new_id()
    pid = start_probe(runtime, b, cid, with_fds(host_dirs[:1], runtime.cmd(
        "create", "--preserve-fds", "1", "--bundle", str(b.path), cid)))
    stdio = {0: Path("/dev/null"), 1: b.path / f"{cid}.out", 2: b.path / f"{cid}.err"}
    assert foreign_fds(pid, stdio) == [f"fd 3 -> {host_dirs[0]}: a directory"]
    inside, _ = probe_output((b.path / f"{cid}.out").read_text())
    assert sorted(inside) == [0, 1, 2, 3], (runtime.name, inside)
    runtime("kill", cid, "KILL")


def test_exec_holds_only_its_stdio(runtime: Runtime, probe_bundle: Bundle) -> None:
    b = probe_bundle
    cri_config(b, ["/bin/fd_probe", "wait"], PLAIN)
    cid = runtime.new_id()
    start_probe(runtime, b, cid, runtime.cmd("create", "--bundle", str(b.path), cid))
    for cwd in ("/", "/tmp"):
        r = runtime("exec", "--cwd", cwd, cid, "/bin/fd_probe", stdin=subprocess.DEVNULL)
        assert r.returncode == 0, (runtime.name, r.stderr)
        inside, seen = probe_output(r.stdout)
        assert sorted(inside) == [0, 1, 2], (runtime.name, inside)
        assert seen == cwd, runtime.name
    runtime("kill", cid, "KILL")


def _assert_refused(runtime: Runtime, r: subprocess.CompletedProcess[str], cwd: str,
                    places: list[Path]) -> None:
    assert r.returncode != 0, (runtime.name, cwd, r.stdout)
    assert "started" not in r.stdout, (runtime.name, cwd)
    for place in places:
        assert not (place / "escaped").exists(), (runtime.name, cwd, place)
    if runtime.name == "crid-runtime":
        assert f"process.cwd {cwd!r}" in r.stderr, r.stderr


ESCAPE = ["/bin/sh", "-c", "touch escaped; echo started"]


@pytest.mark.parametrize("preserved", [False, True], ids=["own-fds", "preserved-host-dirs"])
@pytest.mark.parametrize("via", ["cwd", "symlink"])
def test_cwd_through_proc_self_fd_is_refused(runtime: Runtime, bundle: Bundle,
                                             host_dirs: list[Path], preserved: bool,
                                             via: str) -> None:
    """The CVE's shape: process.cwd /proc/self/fd/N for N in 3..10, written
    into config.json directly (crid's spec builder refuses it, but a runtime
    must not rely on its caller), or as the image's innocent-looking
    WorkingDir /work, a symlink to /proc/self/fd/N. Whatever fd N is inside
    the runtime (its own, or a host directory we pass), the container must
    not start, and nothing may be written where the cwd pointed."""
    for fd in range(3, 11):
        if via == "symlink":
            link = bundle.rootfs / "work"
            link.unlink(missing_ok=True)
            link.symlink_to(f"/proc/self/fd/{fd}")
            cri_config(bundle, ESCAPE, PLAIN, working_dir="/work")
        else:
            cri_config(bundle, ESCAPE, PLAIN)
            bundle.config["process"]["cwd"] = f"/proc/self/fd/{fd}"
            bundle.write()
        cid = runtime.new_id()
        cmd = runtime.cmd("run", "--bundle", str(bundle.path), cid)
        if preserved:
            cmd = with_fds(host_dirs, runtime.cmd(
                "run", "--preserve-fds", str(len(host_dirs)), "--bundle", str(bundle.path), cid))
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        cwd = bundle.config["process"]["cwd"]
        _assert_refused(runtime, r, cwd, [*host_dirs, bundle.rootfs, bundle.path])
        if runtime.name == "crid-runtime" and preserved:
            assert "outside the container's root" in r.stderr, r.stderr


def test_exec_cwd_through_proc_self_fd_is_refused(runtime: Runtime, probe_bundle: Bundle,
                                                  host_dirs: list[Path]) -> None:
    """The same through ``exec --cwd``, with host directories passed as fds 3..10."""
    b = probe_bundle
    cri_config(b, ["/bin/fd_probe", "wait"], PLAIN)
    cid = runtime.new_id()
    start_probe(runtime, b, cid, runtime.cmd("create", "--bundle", str(b.path), cid))
    for fd in range(3, 11):
        r = subprocess.run(with_fds(host_dirs, runtime.cmd(
            "exec", "--preserve-fds", str(len(host_dirs)), "--cwd", f"/proc/self/fd/{fd}",
            cid, *ESCAPE)), capture_output=True, text=True, timeout=30,
            stdin=subprocess.DEVNULL)
        _assert_refused(runtime, r, f"/proc/self/fd/{fd}", [*host_dirs, b.rootfs])
    runtime("kill", cid, "KILL")


def test_created_init_is_out_of_the_containers_reach(crid_runtime: Runtime,
                                                     probe_bundle: Bundle) -> None:
    """Before ``start`` the container's first process is still the runtime's
    init, holding the exec fifo in the runtime's state dir, its binary the
    host's interpreter. A process exec'd into the created container may not
    read those through /proc/1 (the init is non-dumpable until execve).
    crid-runtime only: runc 1.1.5's init lists its fds to the container."""
    runtime = crid_runtime
    b = probe_bundle
    cri_config(b, ["/bin/fd_probe"], PLAIN)
    cid = runtime.new_id()
    outp, errp = b.path / f"{cid}.out", b.path / f"{cid}.err"
    with open(outp, "w") as out, open(errp, "w") as err:
        created = subprocess.run(runtime.cmd("create", "--bundle", str(b.path), cid),
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=err, timeout=30)
    assert created.returncode == 0, errp.read_text()
    init = int(runtime.state(cid)["pid"])
    # From the host the init does hold a host path: the check below is not vacuous.
    held = [os.readlink(f"/proc/{init}/fd/{n}") for n in os.listdir(f"/proc/{init}/fd")]
    state_dir = str(runtime.root)
    assert any(t.startswith(state_dir) for t in held), held
    # The fd numbers may be listed; no link may be read or followed.
    r = runtime("exec", cid, "/bin/sh", "-c",
                "for n in $(ls /proc/1/fd); do readlink /proc/1/fd/$n; echo readlink$n=$?; "
                "stat -L /proc/1/fd/$n >/dev/null; echo stat$n=$?; done; "
                "readlink /proc/1/exe; echo exe=$?; readlink /proc/1/cwd; echo cwd=$?",
                stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert state_dir not in r.stdout and "python" not in r.stdout, r.stdout
    results = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
    assert {"readlink0", "stat0", "exe", "cwd"} <= set(results), r.stdout
    assert "0" not in results.values(), r.stdout
    runtime("start", cid, check=True)
    deadline = time.monotonic() + 10
    while "done" not in outp.read_text():
        assert time.monotonic() < deadline, errp.read_text()
        time.sleep(0.02)
    inside, cwd = probe_output(outp.read_text())
    assert sorted(inside) == [0, 1, 2] and cwd == "/", (inside, cwd)
