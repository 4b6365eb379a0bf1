"""The exec fork server (ExecSync of the ``crid`` handler) is no way into the
host, nor out of a container:

- the server, and the session it forks per exec, stay in the host's (the
  daemon's) namespaces and cgroups; only the exec'd process is in the
  container's (checked too, so the comparison can fail);
- the exec'd process holds its three stdio fds and nothing else: not the
  server's listening socket, not the connection of its request;
- the session holds no listening socket either (it is closed after the fork);
- only root reaches the server: its socket is 0600 in a 0700 dir, and a
  process of another user that may pass through every dir above is refused.
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cri_api.v1 import api_pb2

from e2e.containers.conftest import Env, started_env
from e2e.containers.fork_server import Background, parent, process_of, server
from e2e.containers.helpers import exec_sync, run
from e2e.fixtures.registry import Registry
from e2e.sandbox.pods import namespace_options, pod_config, stop_remove

NAMESPACES = ("mnt", "pid", "net", "ipc", "uts", "cgroup", "user")
NOBODY = 65534


@pytest.fixture(scope="module")
def env(registry: Registry) -> Iterator[Env]:
    with started_env(registry) as found:
        yield found


@pytest.fixture
def container(env: Env) -> Iterator[str]:
    config = pod_config(linux=namespace_options())
    pod_id = str(env.daemon.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(
        config=config, runtime_handler="crid")).pod_sandbox_id)
    yield run(env.daemon, pod_id, config, env.image)
    stop_remove(env.daemon, pod_id)


def namespaces(pid: int) -> dict[str, str]:
    return {ns: os.readlink(f"/proc/{pid}/ns/{ns}") for ns in NAMESPACES}


def cgroups(pid: int) -> str:
    return Path(f"/proc/{pid}/cgroup").read_text()


def fds(pid: int) -> dict[int, str]:
    return {int(fd): os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}


def test_server_and_session_stay_on_the_host_and_hold_no_listener(
        env: Env, container: str) -> None:
    assert env.daemon.process is not None
    daemon = env.daemon.process.pid
    call = Background(env.daemon, container, "/bin/sleep", "33", timeout=1)
    process = process_of(["/bin/sleep", "33"])
    session = parent(process)
    forks = server(env.daemon)
    assert parent(session) == forks

    for pid in (forks, session):
        assert namespaces(pid) == namespaces(daemon), pid
        assert cgroups(pid) == cgroups(daemon), pid
    # The exec'd process is in the container: the same checks see the difference.
    assert namespaces(process)["mnt"] != namespaces(daemon)["mnt"]
    assert namespaces(process)["pid"] != namespaces(daemon)["pid"]
    assert cgroups(process) != cgroups(daemon)

    listening = {target for target in fds(forks).values() if target.startswith("socket:")}
    assert listening, fds(forks)  # the server's own socket: what nothing below may hold
    assert not listening & set(fds(session).values()), (fds(session), listening)
    held = fds(process)
    assert sorted(held) == [0, 1, 2], held
    assert held[0] == "/dev/null" and all(held[fd].startswith("pipe:") for fd in (1, 2)), held
    call.join(within=10)  # timed out and killed after 1 s


def test_exec_sync_sees_only_its_stdio(env: Env, container: str) -> None:
    out = exec_sync(env.daemon, container, "/bin/sh", "-c",
                    'for f in /proc/$$/fd/*; do [ -e "$f" ] && echo "${f##*/}"; done')
    assert out.stdout.split() == [b"0", b"1", b"2"], out


def test_only_root_reaches_the_fork_server(env: Env, container: str) -> None:
    assert exec_sync(env.daemon, container, "/bin/true").exit_code == 0
    sock = env.daemon.runroot / "exec-server" / "exec.sock"
    mode = sock.stat()
    assert stat.S_ISSOCK(mode.st_mode) and stat.S_IMODE(mode.st_mode) == 0o600
    assert mode.st_uid == 0
    assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700
    # Let another user pass through every dir above ours: the server's own
    # dir and socket are then all that stand in the way.
    above = [p for p in sock.parent.parents if p.is_relative_to(env.daemon.workdir)]
    saved = {p: stat.S_IMODE(p.stat().st_mode) for p in above}
    try:
        for p in above:
            p.chmod(saved[p] | 0o111)
        for target in (sock, sock.parent):
            saved_target = stat.S_IMODE(target.stat().st_mode)
            target.chmod(0o777 if target == sock else 0o711)  # loosen the other guard
            try:
                tried = subprocess.run(
                    ["/usr/bin/python3.11", "-I", "-c",
                     "import socket, sys; s = socket.socket(socket.AF_UNIX)\n"
                     "try: s.connect(sys.argv[1])\n"
                     "except PermissionError: print('refused')\n"
                     "else: print('connected')", str(sock)],
                    user=NOBODY, group=NOBODY, capture_output=True, text=True, timeout=30)
            finally:
                target.chmod(saved_target)
            assert tried.stdout.strip() == "refused", (target, tried)
    finally:
        for p, m in saved.items():
            p.chmod(m)
