"""ExecSync through the exec fork server (crid handler): it survives being
killed and with the daemon, a call in flight when it dies fails at once and
leaves nothing running, an exec whose container ends under it ends too, and
without a server ExecSync falls back to the runtime's exec command.

The results themselves (exit codes, output, user, env, cwd, the output cap,
the timeout) are checked by the ExecSync tests of both handlers
(test_lifecycle, test_exec_sync_output, test_security, ...), which go
through the fork server for ``crid``.
"""

from __future__ import annotations

import os
import signal
import time

import grpc
import pytest
from cri_api.v1 import api_pb2

from e2e.containers.conftest import Env, Pod, started_env
from e2e.containers.fork_server import Background, process_of, reaped, server, servers
from e2e.containers.helpers import exec_sync, gone_or_zombie, run
from e2e.fixtures.registry import Registry
from e2e.sandbox.pods import namespace_options, pod_config, stop_remove


@pytest.fixture
def handler() -> str:
    return "crid"  # runc's ExecSync runs its own exec command


def test_a_killed_fork_server_is_replaced_by_the_next_exec(env: Env, pod: Pod) -> None:
    cid = run(env.daemon, pod.id, pod.config, env.image)
    assert exec_sync(env.daemon, cid, "/bin/true").exit_code == 0
    old = server(env.daemon)
    os.kill(old, signal.SIGKILL)
    assert gone_or_zombie(old, within=5)
    out = exec_sync(env.daemon, cid, "/bin/sh", "-c", "echo again; exit 7")
    assert (out.exit_code, out.stdout) == (7, b"again\n")
    assert server(env.daemon) != old


def test_an_exec_in_flight_when_the_server_dies_fails_and_leaves_nothing(
        env: Env, pod: Pod) -> None:
    cid = run(env.daemon, pod.id, pod.config, env.image)
    call = Background(env.daemon, cid, "/bin/sleep", "31")
    sleeper = process_of(["/bin/sleep", "31"])
    killed_at = time.monotonic()
    os.kill(server(env.daemon), signal.SIGKILL)
    call.join(within=10)
    assert call.error is not None, call.response
    assert "fork server ended during the exec" in (call.error.details() or "")
    assert call.ended_at - killed_at < 5
    assert reaped(sleeper, within=5), "the exec'd process outlived its call, or was not reaped"
    ps = exec_sync(env.daemon, cid, "/bin/sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '")
    assert ps.exit_code == 0 and b"sleep 31" not in ps.stdout, ps.stdout
    assert len(servers(env.daemon)) == 1


def test_a_timed_out_exec_is_killed_and_reaped(env: Env, pod: Pod) -> None:
    """DeadlineExceeded only once the process is gone: no zombie is left in the
    container's cgroup (which could then not be removed)."""
    cid = run(env.daemon, pod.id, pod.config, env.image)
    call = Background(env.daemon, cid, "/bin/sleep", "34", timeout=1)
    sleeper = process_of(["/bin/sleep", "34"])
    call.join(within=10)
    assert call.error is not None and call.error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert reaped(sleeper, within=0.5), "the timed-out process is still there, or a zombie"


def test_an_exec_whose_container_exits_under_it_ends(env: Env) -> None:
    config = pod_config(linux=namespace_options())  # the container's own PID namespace
    pod_id = str(env.daemon.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(
        config=config, runtime_handler="crid")).pod_sandbox_id)
    try:
        cid = run(env.daemon, pod_id, config, env.image)
        call = Background(env.daemon, cid, "/bin/sleep", "32")
        sleeper = process_of(["/bin/sleep", "32"])
        stopped_at = time.monotonic()
        env.daemon.runtime.StopContainer(api_pb2.StopContainerRequest(
            container_id=cid, timeout=0))
        call.join(within=10)
        assert call.ended_at - stopped_at < 5
        # Its PID namespace's init died: the kernel killed the exec'd sleep.
        assert call.error is None and call.response is not None, call.error
        assert call.response.exit_code == 137
        assert reaped(sleeper, within=2)
        with pytest.raises(grpc.RpcError) as raised:
            exec_sync(env.daemon, cid, "/bin/true")
        assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        stop_remove(env.daemon, pod_id)


def test_the_fork_server_dies_with_the_daemon(env: Env, pod: Pod) -> None:
    """A daemon killed outright takes its fork server along (PR_SET_PDEATHSIG):
    the next daemon starts its own, on the same socket path."""
    cid = run(env.daemon, pod.id, pod.config, env.image)
    assert exec_sync(env.daemon, cid, "/bin/true").exit_code == 0
    old = server(env.daemon)
    env.daemon.kill()
    assert gone_or_zombie(old, within=5), "the fork server outlived its daemon"
    env.daemon.start()
    out = exec_sync(env.daemon, cid, "/bin/echo", "after")
    assert (out.exit_code, out.stdout) == (0, b"after\n")
    assert server(env.daemon) != old


def test_without_a_fork_server_exec_sync_runs_the_runtime_exec(registry: Registry) -> None:
    """A server that cannot start (here: a dir where its socket goes) is
    logged, and ExecSync runs ``crid-runtime exec`` as before. A daemon of its
    own: it tries no other server for the next 30 s."""
    with started_env(registry) as own:
        config = pod_config()
        pod_id = str(own.daemon.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(
            config=config, runtime_handler="crid")).pod_sandbox_id)
        cid = run(own.daemon, pod_id, config, own.image)
        assert exec_sync(own.daemon, cid, "/bin/true").exit_code == 0
        sock = own.daemon.runroot / "exec-server" / "exec.sock"
        os.kill(server(own.daemon), signal.SIGKILL)
        sock.unlink()
        sock.mkdir()
        try:
            out = exec_sync(own.daemon, cid, "/bin/sh", "-c", "echo fallback; exit 5")
            assert (out.exit_code, out.stdout) == (5, b"fallback\n")
            assert servers(own.daemon) == []
            assert "the exec fork server did not start" in own.daemon.stderr_text()
        finally:
            sock.rmdir()
