"""Small helpers shared by the runtime tests: run a script in a bundle and read
what the container saw; wait for a state; receive a pty over a console socket;
a bundle in a user namespace."""

from __future__ import annotations

import copy
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from e2e.fixtures.bundle import Bundle, Runtime


def sees(rt: Runtime, b: Bundle, script: str) -> subprocess.CompletedProcess[str]:
    """Run ``sh -c script`` through ``rt run`` and return the finished process."""
    b.write(["sh", "-c", script])
    return rt.run(b)


def out(rt: Runtime, b: Bundle, script: str) -> str:
    r = sees(rt, b, script)
    assert r.returncode == 0, f"{rt.name}: rc={r.returncode} stderr={r.stderr}"
    return r.stdout.strip()


def wait_status(rt: Runtime, cid: str, want: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        got = rt.state(cid)["status"]
        if got == want:
            return
        assert time.monotonic() < deadline, f"{rt.name}: {cid} is {got}, wanted {want}"
        time.sleep(0.02)


def cgroup_file(b: Bundle, controller: str, name: str) -> str:
    return Path(f"/sys/fs/cgroup/{controller}/{b.cgroup_name}/{name}").read_text().strip()


class ConsoleSocket:
    """A listening unix socket that receives the pty master a runtime sends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(1)
        self.sock.settimeout(20)

    def receive(self) -> int:
        conn, _ = self.sock.accept()
        with conn:
            _, fds, _, _ = socket.recv_fds(conn, 1024, 1)
        assert fds, "no fd received on the console socket"
        return fds[0]

    def close(self) -> None:
        self.sock.close()


def read_all(fd: int, timeout: float = 10) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    os.set_blocking(fd, False)
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            time.sleep(0.01)
            continue
        except OSError:  # EIO once the slave side is closed
            break
        if not chunk:
            break
        data += chunk
    return data


USERNS_HOST_ID = 100000


def userns_bundle(bundle: Bundle, request: pytest.FixtureRequest) -> Bundle:
    """A copy of ``bundle`` in a user namespace: container root is host uid and gid
    100000 (65536 ids), its rootfs owned by them, in a dir both runtimes can enter
    as that uid; without the cgroup and sysfs mounts, which a user namespace may
    not read here (cgroup v1 bind mounts)."""
    outside = Path(tempfile.mkdtemp(prefix="crid-userns-"))
    os.chmod(outside, 0o755)
    request.addfinalizer(lambda: shutil.rmtree(outside))
    made = Bundle(outside / "bundle", bundle.cgroup_name)
    made.config = copy.deepcopy(made.config)
    subprocess.run(["chown", "-hR", f"{USERNS_HOST_ID}:{USERNS_HOST_ID}", str(made.rootfs)],
                   check=True)
    made.config["linux"]["namespaces"].append({"type": "user"})
    for key in ("uidMappings", "gidMappings"):
        made.config["linux"][key] = [{"containerID": 0, "hostID": USERNS_HOST_ID,
                                      "size": 65536}]
    made.config["mounts"] = [m for m in made.config["mounts"]
                             if m["type"] not in ("cgroup", "sysfs")]
    return made
