"""Exec, attach and port-forward through the CRI's one-time URLs, on real containers.

The clients are the ``kubernetes`` package's WebSocket client and our SPDY
test client (itself checked against Go's spdystream in e2e/streaming).
"""

from __future__ import annotations

import asyncio
import hashlib
import time

import grpc
import pytest
from cri_api.v1 import api_pb2
from kubernetes.client import Configuration
from kubernetes.stream.ws_client import WSClient, get_websocket_url

from e2e.containers.conftest import Env, Pod
from e2e.containers.helpers import create, exec_sync, wait_state
from e2e.streaming import spdy_client


def running(env: Env, pod: Pod, *command: str, stdin: bool = False,
            stdin_once: bool = False) -> str:
    cid = create(env.daemon, pod.id, pod.config, env.image, command=list(command),
                 stdin=stdin, stdin_once=stdin_once)
    env.daemon.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    wait_state(env.daemon, cid, api_pb2.CONTAINER_RUNNING)
    return cid


def exec_url(env: Env, cid: str, *cmd: str, **flags: bool) -> str:
    request = api_pb2.ExecRequest(container_id=cid, cmd=list(cmd), stdout=True, **flags)
    url: str = env.daemon.runtime.Exec(request).url
    return url


def websocket(url: str) -> WSClient:
    ws = WSClient(Configuration(), get_websocket_url(url), {}, capture_all=True, binary=True)
    ws.run_forever(timeout=30)
    return ws


def test_exec_over_websocket_reports_output_and_exit_code(env: Env, pod: Pod) -> None:
    cid = running(env, pod, "/bin/sleep", "600")
    ws = websocket(exec_url(env, cid, "/bin/sh", "-c", "echo out; echo err >&2; exit 5",
                            stderr=True))
    assert (ws.read_stdout(), ws.read_stderr(), ws.returncode) == (b"out\n", b"err\n", 5)


def test_exec_over_spdy_with_stdin_and_with_a_tty(env: Env, pod: Pod) -> None:
    cid = running(env, pod, "/bin/sleep", "600")
    piped = asyncio.run(spdy_client.remote_command(
        exec_url(env, cid, "/bin/sh", "-c", "tr a-z A-Z; exit 2", stdin=True, stderr=True),
        stdin=b"hello\n"))
    assert (piped.stdout, piped.exit_code) == (b"HELLO\n", 2)
    tty = asyncio.run(spdy_client.remote_command(
        exec_url(env, cid, "/bin/sh", "-c", "stty size; tty", tty=True),
        tty=True, stderr=False, sizes=((91, 33),)))
    # Line ends are the terminals' business, not this test's: under runc an
    # early line now and then comes out "\r\r\n" (its foreground relay resets
    # the container terminal's ONLCR concurrently with the process starting).
    lines = tty.stdout.decode().replace("\r", "").split("\n")
    assert lines[0] == "33 91" and lines[1].startswith("/dev/pts/")
    assert tty.exit_code == 0
    # The terminal's child is forked for a preexec_fn: with gRPC's fork
    # handlers on, it logged a line per fork here, and now and then printed
    # an epoll error into the container's terminal before its exec.
    assert "fork() handlers" not in env.daemon.stderr_text()


def test_ten_megabytes_through_exec(env: Env, pod: Pod) -> None:
    cid = running(env, pod, "/bin/sleep", "600")
    result = asyncio.run(spdy_client.remote_command(exec_url(
        env, cid, "/bin/sh", "-c", "head -c 10485760 /dev/zero | tr '\\0' x")))
    assert result.stdout == b"x" * 10 * 1024 * 1024


def test_attach_sees_output_after_it_connects_and_sends_stdin(env: Env, pod: Pod) -> None:
    cid = running(env, pod, "/bin/sh", "-c", "read line; echo got $line; sleep 1; echo bye",
                  stdin=True, stdin_once=True)
    url = env.daemon.runtime.Attach(api_pb2.AttachRequest(
        container_id=cid, stdin=True, stdout=True, stderr=True)).url
    result = asyncio.run(spdy_client.remote_command(url, stdin=b"ping\n"))
    assert result.stdout == b"got ping\nbye\n"


def _wait_listening(env: Env, cid: str, port: int) -> None:
    """Until the container's server listens: a running container's shell may not
    have started ``nc`` yet when the next CRI call arrives."""
    deadline = time.monotonic() + 10
    while True:
        table = exec_sync(env.daemon, cid, "cat", "/proc/net/tcp", "/proc/net/tcp6").stdout
        # Columns: sl, local address:port (hex), remote, state (0A: LISTEN), ...
        rows = [line.split() for line in table.decode().splitlines()[1:]]
        if any(len(r) > 3 and r[1].endswith(f":{port:04X}") and r[3] == "0A" for r in rows):
            return
        assert time.monotonic() < deadline, f"nothing listens on {port}"
        time.sleep(0.05)


def test_port_forward_reaches_a_server_in_the_pod(env: Env, pod: Pod) -> None:
    cid = running(env, pod, "/bin/sh", "-c",
                  "nc -l -p 7070 | sha256sum > /tmp/sum; sleep 600")
    payload = bytes(range(256)) * 4096  # 1 MiB
    _wait_listening(env, cid, 7070)
    url = env.daemon.runtime.PortForward(api_pb2.PortForwardRequest(
        pod_sandbox_id=pod.id, port=[7070])).url
    _, problem = asyncio.run(spdy_client.port_forward(url, 7070, payload))
    assert problem == b""
    deadline = time.monotonic() + 10
    while not (found := exec_sync(env.daemon, cid, "/bin/cat", "/tmp/sum").stdout):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert found.split()[0].decode() == hashlib.sha256(payload).hexdigest()


def test_streaming_calls_need_a_running_container(env: Env, pod: Pod) -> None:
    cid = create(env.daemon, pod.id, pod.config, env.image, command=["/bin/true"])
    with pytest.raises(grpc.RpcError) as raised:
        env.daemon.runtime.Exec(api_pb2.ExecRequest(container_id=cid, cmd=["ls"], stdout=True))
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as raised:
        env.daemon.runtime.PortForward(api_pb2.PortForwardRequest(pod_sandbox_id="nope"))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
