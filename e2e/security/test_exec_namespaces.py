"""Issue 14, hole 2: an exec joins every namespace of its container, or none.

crid-runtime's exec used to skip a namespace whose /proc/<init>/ns file was
missing or equal to its own: an exec that raced the container's exit (init
gone, or its pid taken by a host process) ran its process in the host's
namespaces, as host root with the host's filesystem. Now every namespace the
config lists is opened from a pinned, checked init before any is joined,
one the config gives the container but that is the host's is refused, and
init must outlive the joins; any failure leaves no process started.

Each attack runs a command that would leave a marker file in /tmp wherever
it ran (the host's /tmp, or the container's), and the test asserts that the
exec failed with a clear message and that no marker exists anywhere. The
race is forced, not hoped for: ``exec_race`` runs the verb in-process with
init killed at the chosen point through the syscall seam.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.fixtures.bundle import REPO, Bundle, Runtime
from e2e.runtime.helpers import userns_bundle, wait_status


class Marker:
    """A file an exec'd ``touch`` would make: on the host or in the rootfs."""

    def __init__(self, bundle: Bundle) -> None:
        self.name = f"/tmp/crid-exec-escape-{uuid.uuid4().hex[:10]}"
        self.host = Path(self.name)
        self.container = bundle.rootfs / self.name.lstrip("/")
        self.command = ["sh", "-c", f"touch {self.name}; readlink /proc/self/ns/mnt"]

    def assert_nothing_ran(self) -> None:
        assert not self.host.exists(), "the exec'd command ran on the host"
        assert not self.container.exists(), "the exec'd command ran although exec failed"

    def cleanup(self) -> None:
        self.host.unlink(missing_ok=True)


@pytest.fixture
def marker(bundle: Bundle) -> Iterator[Marker]:
    m = Marker(bundle)
    yield m
    m.cleanup()


def start_sleeper(rt: Runtime, b: Bundle) -> tuple[str, int]:
    b.write(["sleep", "300"])
    cid = rt.create(b)
    rt("start", cid, check=True)
    wait_status(rt, cid, "running")
    return cid, int(rt.state(cid)["pid"])


def kill_init(pid: int) -> None:
    os.kill(pid, 9)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and "Z" not in _state(pid):
        assert time.monotonic() < deadline, f"init {pid} did not die"
        time.sleep(0.01)


def _state(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "gone"
    return raw[raw.rindex(")") + 2:].split()[0]


def ns_links(pid: int) -> dict[str, str]:
    d = f"/proc/{pid}/ns"
    return {name: os.readlink(f"{d}/{name}") for name in sorted(os.listdir(d))}


# --- (a) init gone, or not the container's, before the exec ------------------


def test_exec_after_init_was_killed_fails(runtime: Runtime, bundle: Bundle,
                                          marker: Marker) -> None:
    cid, init = start_sleeper(runtime, bundle)
    kill_init(init)
    r = runtime("exec", cid, *marker.command)
    assert r.returncode != 0, f"{runtime.name}: exec into a dead container succeeded: {r.stdout}"
    if runtime.name == "crid-runtime":
        assert "container not running" in r.stderr, r.stderr
    marker.assert_nothing_ran()


def test_exec_whose_recorded_init_is_a_host_process_is_refused(
        crid_runtime: Runtime, bundle: Bundle, marker: Marker) -> None:
    """The state still says running, but the pid it records (with a start time
    that matches) is a process in the host's namespaces: a pid reused after the
    container died, made certain by writing it in. The namespaces the config
    gives the container are then the host's, and the exec must refuse them
    (it used to skip each one equal to its own and run on the host)."""
    cid, init = start_sleeper(crid_runtime, bundle)
    host = subprocess.Popen(["sleep", "300"])
    try:
        state_file = crid_runtime.root / cid / "state.json"
        st = json.loads(state_file.read_text())
        raw = Path(f"/proc/{host.pid}/stat").read_text()
        st["pid"], st["pid_start"] = host.pid, int(raw[raw.rindex(")") + 2:].split()[19])
        state_file.write_text(json.dumps(st))
        assert crid_runtime.state(cid)["status"] == "running"
        r = crid_runtime("exec", cid, *marker.command)
        assert r.returncode != 0, f"exec ran in the host's namespaces: {r.stdout}"
        assert "namespace is the runtime's own" in r.stderr, r.stderr
        assert "refusing to start a process in the host's namespaces" in r.stderr
        marker.assert_nothing_ran()
    finally:
        host.kill()
        host.wait()
        kill_init(init)


# --- (b) init exits while exec opens or joins (forced through the seam) ------


@pytest.mark.parametrize("when", ["open", "join"])
def test_init_exits_during_exec(crid_runtime: Runtime, bundle: Bundle, marker: Marker,
                                when: str) -> None:
    cid, init = start_sleeper(crid_runtime, bundle)
    r = subprocess.run([sys.executable, "-P", "-m", "e2e.security.exec_race", when,
                        str(crid_runtime.root), cid, *marker.command],
                       cwd=REPO, capture_output=True, text=True, timeout=30)
    assert f"killed init {init} at {when}" in r.stderr, r.stderr
    assert r.returncode != 0, f"exec succeeded after init died: {r.stdout}"
    assert "container not running" in r.stderr, r.stderr
    assert "no process was started" in r.stderr, r.stderr
    assert not r.stdout, "the exec'd command printed"
    marker.assert_nothing_ran()


# --- (c) a normal exec joins every namespace of the container ----------------


def _exec_detached_sleeper(rt: Runtime, cid: str, tmp: Path) -> int:
    pid_file = tmp / f"exec-{uuid.uuid4().hex[:6]}.pid"
    err = tmp / f"{pid_file.name}.err"
    # The process keeps the stdio it is given: files, not pipes we would wait on.
    with open(err, "w") as errf:
        r = rt("exec", "--detach", "--pid-file", str(pid_file), cid, "sleep", "60",
               capture_output=False, stdin=subprocess.DEVNULL, stdout=errf, stderr=errf)
    assert r.returncode == 0, f"{rt.name}: {err.read_text()}"
    return int(pid_file.read_text())


def test_exec_joins_all_of_the_containers_namespaces(runtime: Runtime, bundle: Bundle,
                                                     tmp_path: Path) -> None:
    bundle.config["linux"]["namespaces"].append({"type": "cgroup"})
    cid, init = start_sleeper(runtime, bundle)
    pid = _exec_detached_sleeper(runtime, cid, tmp_path)
    try:
        theirs = ns_links(init)
        assert ns_links(pid) == theirs
        ours = ns_links(os.getpid())
        own = {"mount": "mnt", "network": "net", "uts": "uts", "ipc": "ipc", "pid": "pid",
               "cgroup": "cgroup"}
        for t in (ns["type"] for ns in bundle.config["linux"]["namespaces"]):
            assert theirs[own[t]] != ours[own[t]], f"{runtime.name}: {t} is the host's"
    finally:
        os.kill(pid, 9)


def test_exec_joins_a_user_namespace_first(runtime: Runtime, bundle: Bundle, tmp_path: Path,
                                           request: pytest.FixtureRequest) -> None:
    """With a user namespace (mapped to host uid 100000), the exec'd process is
    in it and in every other namespace of the container, as the container's root."""
    b = userns_bundle(bundle, request)
    cid, init = start_sleeper(runtime, b)
    pid = _exec_detached_sleeper(runtime, cid, tmp_path)
    try:
        assert ns_links(pid) == ns_links(init)
        assert ns_links(pid)["user"] != ns_links(os.getpid())["user"]
        status = Path(f"/proc/{pid}/status").read_text()
        uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
        assert uid_line.split()[1:] == ["100000"] * 4, uid_line
    finally:
        os.kill(pid, 9)
        runtime("delete", "--force", cid)  # before the finalizer removes its rootfs
