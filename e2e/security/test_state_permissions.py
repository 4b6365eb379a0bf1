"""Issue 15, item 4: an unprivileged user on the node reads none of crid's state
and cannot connect to its socket.

A container's env (where Kubernetes puts Secrets) lands in crid.db and its
WAL, the bundle's config.json and the runtime's state.json. The daemon here
runs with umask 0, so every mode seen is the one crid chose, and its work
dir is opened up (0755) so that crid's own modes are all that stand between
``nobody`` and the files. Then, as ``nobody`` (setpriv):

- every file under --root and --runroot is opened and read; none that holds
  the secret may be read, nor any other but the pod's resolv.conf, hosts and
  hostname (which containers running as any user read): those are, so the
  probe does reach the state dir;
- no dir there lets ``nobody`` make a file (a planted symlink could send a
  root write, conmon's exit file, elsewhere);
- connecting to the socket fails, and succeeds for ``nobody`` given the
  configured ``listen_group``;
- while a daemon starts, ``nobody`` connects in a tight loop and is never
  let in: the socket never has the mode the umask would give it.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cri_api.v1 import api_pb2

from e2e.containers.helpers import pull, run
from e2e.fixtures.daemon import CridDaemon, DaemonFactory, mounts_under
from e2e.fixtures.images import Image, RunConfig
from e2e.fixtures.layers import busybox_layer
from e2e.fixtures.registry import Registry
from e2e.sandbox.pods import pod_config, pod_daemon, stop_remove

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
GROUP = 64999  # the socket's group; no name needed, and no one on the node has it
PYTHON = "/usr/bin/python3.11"  # Debian's: no pyenv shim, reachable by nobody
SECRET = f"TOKEN=s3cr3t-{secrets.token_hex(8)}"

READ_EACH = """
import json, os, sys
found = {}
for path in json.load(sys.stdin):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError as e:
        found[path] = e.strerror
        continue
    try:
        data = os.read(fd, 1 << 24)
    except OSError as e:
        data = b""
    os.close(fd)
    found[path] = "secret" if sys.argv[1].encode() in data else "read"
print(json.dumps(found))
"""

# Try to make a file in each dir (a symlink there could send a root write
# elsewhere: conmon writes the exit file as root); remove what was made.
WRITE_EACH = """
import json, os, sys
made = []
for d in json.load(sys.stdin):
    probe = os.path.join(d, ".nobody-was-here")
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError:
        continue
    os.unlink(probe)
    made.append(d)
print(json.dumps(made))
"""

CONNECT = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
    print("connected")
except OSError as e:
    print(e.strerror)
"""

# Connect until told to stop (a file appears); count what happened.
CONNECT_LOOP = """
import collections, errno, json, os, socket, sys
path, stop = sys.argv[1], sys.argv[2]
seen = collections.Counter()
while not os.path.exists(stop):
    for _ in range(200):
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(path)
            seen["connected"] += 1
        except OSError as e:
            seen[errno.errorcode.get(e.errno, str(e.errno))] += 1
        s.close()
print(json.dumps(seen))
"""


def as_nobody(script: str, *args: str, stdin: str = "", groups: str = "") -> str:
    prefix = [*NOBODY[:-1], f"--groups={groups}"] if groups else NOBODY
    done = subprocess.run([*prefix, PYTHON, "-c", script, *args], input=stdin,
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip()


def open_up(workdir: Path) -> None:
    """The test's temp dir is 0700 (mkdtemp): open it as a node's /var/lib and
    /run are, so only crid's own modes are tested."""
    workdir.chmod(0o755)


@dataclass
class Node:
    daemon: CridDaemon
    image: str


@pytest.fixture(scope="module")
def node(registry: Registry) -> Iterator[Node]:
    image = Image((busybox_layer(),), config=RunConfig(cmd=("/bin/sleep", "600"),
                                                       env=("PATH=/bin",)))
    old = os.umask(0)  # the daemon's, and what conmon and the runtimes inherit
    try:
        started = pod_daemon(f'[crid.api]\nlisten_group = "{GROUP}"\n')
        daemon, _net = started.__enter__()
    finally:
        os.umask(old)
    try:
        open_up(daemon.workdir)
        yield Node(daemon, pull(daemon, registry, image))
    finally:
        started.__exit__(None, None, None)


@dataclass
class Running:
    pod_id: str
    container_id: str
    handler: str


@pytest.fixture(params=["crid", "runc"])
def running(request: pytest.FixtureRequest, node: Node) -> Iterator[Running]:
    """A running container whose env holds the secret, on each handler."""
    config = pod_config()
    pod_id = str(node.daemon.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(
        config=config, runtime_handler=str(request.param))).pod_sandbox_id)
    cid = run(node.daemon, pod_id, config, node.image,
              envs=[api_pb2.KeyValue(key="TOKEN", value=SECRET.split("=", 1)[1])])
    try:
        yield Running(pod_id, cid, str(request.param))
    finally:
        stop_remove(node.daemon, pod_id)


def state_tree(daemon: CridDaemon) -> tuple[list[Path], list[Path]]:
    """Every dir and file under --root and --runroot, mounts (rootfs, the pod's
    /dev/shm, namespaces) left out."""
    mounts = set(mounts_under(daemon.root) + mounts_under(daemon.runroot))
    dirs: list[Path] = []
    files: list[Path] = []
    for top in (daemon.root, daemon.runroot):
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in mounts]
            dirs.append(Path(dirpath))
            files.extend(Path(dirpath, f) for f in filenames
                         if os.path.join(dirpath, f) not in mounts)
    return dirs, files


def holds_secret(path: Path) -> bool:
    try:
        if not stat.S_ISREG(path.lstat().st_mode):
            return False
        return SECRET.split("=", 1)[1].encode() in path.read_bytes()
    except OSError:
        return False


def test_nobody_reads_no_state_that_holds_a_secret(node: Node, running: Running) -> None:
    d = node.daemon
    _, files = state_tree(d)
    holders = {p for p in files if holds_secret(p)}
    names = {p.name for p in holders}
    # The secret is there to steal: in the database and the bundle's config,
    # and (crid's runtime) in its state file.
    assert names & {"crid.db", "crid.db-wal"}, sorted(map(str, holders))
    assert "config.json" in names, sorted(map(str, holders))
    if running.handler == "crid":
        assert "state.json" in names, sorted(map(str, holders))

    secret_value = SECRET.split("=", 1)[1]
    seen = json.loads(as_nobody(READ_EACH, secret_value,
                                stdin=json.dumps([str(p) for p in files])))
    stolen = sorted(path for path, what in seen.items() if what == "secret")
    assert stolen == [], f"nobody read the secret from {stolen}"
    assert all(seen[str(p)] != "read" for p in holders)
    # Nothing else is readable but what a container's user must read: the
    # pod's files (so the probe itself can read, where it may).
    readable = sorted(path for path, what in seen.items() if what == "read")
    pod_dir = d.runroot / "pods" / running.pod_id
    assert readable == [str(pod_dir / name) for name in ("hostname", "hosts", "resolv.conf")]

    # The modes themselves (not only a dir in the way): root's only.
    assert stat.S_IMODE(d.root.stat().st_mode) == 0o700
    assert stat.S_IMODE((d.runroot / "runtimes").stat().st_mode) == 0o700
    for path in holders:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, f"{path} is {path.stat().st_mode:o}"
    for name in ("crid.db", "crid.db-wal", "crid.db-shm"):
        assert stat.S_IMODE((d.root / name).stat().st_mode) == 0o600, name


def test_nobody_writes_in_any_state_dir(node: Node, running: Running) -> None:
    dirs, _ = state_tree(node.daemon)
    assert node.daemon.runroot / "exits" in dirs and node.daemon.runroot / "pods" in dirs
    made = json.loads(as_nobody(WRITE_EACH, stdin=json.dumps([str(p) for p in dirs])))
    assert made == [], f"nobody made files in {made}"
    # The probe can write where others may: the pod's /dev/shm (mode 1777).
    shm = node.daemon.runroot / "pods" / running.pod_id / "shm"
    assert json.loads(as_nobody(WRITE_EACH, stdin=json.dumps([str(shm)]))) == [str(shm)]


def test_only_root_and_the_listen_group_connect(node: Node) -> None:
    socket_path = node.daemon.socket
    st = socket_path.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o660, GROUP)
    assert as_nobody(CONNECT, str(socket_path)) == "Permission denied"
    # The same user in the configured group gets in: the refusal above is the
    # socket's mode and group, not something else in the way.
    assert as_nobody(CONNECT, str(socket_path), groups=str(GROUP)) == "connected"


def test_the_socket_is_never_open_to_others_while_the_daemon_starts(
    crid_factory: DaemonFactory,
) -> None:
    for _ in range(3):  # three starts: a window of a millisecond is met at least once
        daemon = crid_factory(start=False)
        open_up(daemon.workdir)
        stop = daemon.workdir / "stop-probing"
        prober = subprocess.Popen(
            [*NOBODY, PYTHON, "-c", CONNECT_LOOP, str(daemon.socket), str(stop)],
            stdout=subprocess.PIPE, text=True)
        time.sleep(0.3)  # the prober is looping before the daemon binds
        old = os.umask(0)  # without crid's care the socket would be 0777 for a moment
        try:
            daemon.start()
        finally:
            os.umask(old)
        time.sleep(0.3)
        stop.touch()
        out, _ = prober.communicate(timeout=30)
        seen = json.loads(out)
        assert seen.get("connected", 0) == 0, f"nobody connected while crid started: {seen}"
        # It raced the real socket: first absent, then there and refused.
        assert seen.get("ENOENT", 0) > 0 and seen.get("EACCES", 0) > 0, seen
        daemon.stop()
