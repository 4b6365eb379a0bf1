"""The CRI log conmon writes (full and partial lines, both streams, reopen after
a rename) and stopping with the request's or the image's stop signal."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from cri_api.v1 import api_pb2

from e2e.containers.conftest import Env, Pod
from e2e.containers.helpers import create, exec_sync, log_lines, pull, run, run_to_exit, status
from e2e.fixtures.images import RunConfig, busybox_image
from e2e.fixtures.registry import Registry

# Records the signal that arrived in the log, then exits 0.
TRAPS = ("trap 'echo got USR1; exit 0' USR1; trap 'echo got USR2; exit 0' USR2; "
         "trap 'echo got TERM; exit 0' TERM; echo ready; while true; do sleep 0.1; done")


def wait_for(predicate: object, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_full_and_partial_lines_on_both_streams(env: Env, pod: Pod) -> None:
    done, _ = run_to_exit(env.daemon, pod.id, pod.config, env.image, command=[
        "/bin/sh", "-c",
        "echo one; echo oops >&2; printf 'half'; sleep 0.3; echo ' rest'; printf tail"])
    assert done.exit_code == 0
    lines = log_lines(done.log_path)
    # The two streams are separate pipes: order is kept within each, not across.
    assert [line for line in lines if line[0] == "stdout"] == [
        ("stdout", "F", "one"), ("stdout", "P", "half"), ("stdout", "F", " rest"),
        ("stdout", "P", "tail")], lines
    assert [line for line in lines if line[0] == "stderr"] == [("stderr", "F", "oops")]
    stamps = [line.split(" ", 1)[0] for line in Path(done.log_path).read_text().splitlines()]
    # RFC 3339 with nanoseconds and a zone.
    assert all("T" in s and "." in s and (s.endswith("Z") or "+" in s or "-" in s[-6:])
               for s in stamps), stamps


def test_reopen_container_log_after_rename(env: Env, pod: Pod) -> None:
    d = env.daemon
    cid = run(d, pod.id, pod.config, env.image, log_path="reopen.log", command=[
        "/bin/sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.05; done"])
    log = Path(status(d, cid).log_path)
    wait_for(lambda: log.exists() and log.stat().st_size > 0)
    rotated = log.with_name("reopen.log.1")
    os.rename(log, rotated)
    d.runtime.ReopenContainerLog(api_pb2.ReopenContainerLogRequest(container_id=cid))
    wait_for(lambda: log.exists() and len(log.read_text().splitlines()) >= 3)
    size = rotated.stat().st_size
    time.sleep(0.3)
    assert rotated.stat().st_size == size, "conmon still writes to the renamed log"
    first_new = log_lines(str(log))[0]
    last_old = log_lines(str(rotated))[-1]
    assert first_new[0:2] == ("stdout", "F") and first_new[2].startswith("tick ")
    assert int(first_new[2].split()[1]) == int(last_old[2].split()[1]) + 1


@pytest.mark.parametrize(("signal_field", "image_signal", "arrived"), [
    (api_pb2.Signal.SIGUSR1, "", "USR1"),
    (api_pb2.Signal.RUNTIME_DEFAULT, "SIGUSR2", "USR2"),
    (api_pb2.Signal.SIGUSR1, "SIGUSR2", "USR1"),
    (api_pb2.Signal.RUNTIME_DEFAULT, "", "TERM"),
])
def test_stop_sends_the_stop_signal(env: Env, pod: Pod, registry: Registry, signal_field: int,
                                    image_signal: str, arrived: str) -> None:
    d = env.daemon
    image = pull(d, registry, busybox_image(config=RunConfig(stop_signal=image_signal)))
    cid = create(d, pod.id, pod.config, image, command=["/bin/sh", "-c", TRAPS],
                 stop_signal=signal_field, log_path=f"stop-{arrived}.log")
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    log = Path(status(d, cid).log_path)
    wait_for(lambda: log.exists() and "ready" in log.read_text())
    d.runtime.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=10))
    stopped = status(d, cid)
    assert (stopped.state, stopped.exit_code) == (api_pb2.CONTAINER_EXITED, 0)
    assert [text for _, _, text in log_lines(str(log))] == ["ready", f"got {arrived}"]


def test_a_long_line_is_split_into_partial_entries(env: Env, pod: Pod) -> None:
    done, _ = run_to_exit(env.daemon, pod.id, pod.config, env.image, command=[
        "/bin/sh", "-c", "head -c 40000 /dev/zero | tr '\\0' a; echo; echo next"])
    lines = log_lines(done.log_path)
    assert len(lines) > 2 and all(tag == "P" for _, tag, _ in lines[:-2]), lines[:3]
    assert lines[-2][1] == "F" and lines[-1] == ("stdout", "F", "next")
    assert "".join(text for _, _, text in lines[:-1]) == "a" * 40000


# Python ignores these at start-up; /proc shows signal N as bit N - 1.
PYTHON_IGNORES = (1 << (signal.SIGPIPE - 1)) | (1 << (signal.SIGXFSZ - 1))


def _signal_masks(lines: list[str]) -> tuple[int, int]:
    """(SigIgn, SigBlk) of a /proc/PID/status."""
    found = {line.split(":")[0]: int(line.split()[1], 16) for line in lines
             if line.startswith(("SigIgn:", "SigBlk:"))}
    return found["SigIgn"], found["SigBlk"]


def test_container_processes_start_with_no_signal_ignored_or_blocked(env: Env, pod: Pod) -> None:
    """crid-runtime is Python, which starts with SIGPIPE and SIGXFSZ ignored; an
    ignored signal survives execve. A container's first process and its execs
    must get a fresh process's signal state, as under runc (`yes | head` ends
    quietly). (What the environment that started crid ignores, every runtime
    passes on: only Python's own are checked.)"""
    _, first = run_to_exit(env.daemon, pod.id, pod.config, env.image,
                           command=["/bin/cat", "/proc/self/status"])
    cid = run(env.daemon, pod.id, pod.config, env.image)
    execed = exec_sync(env.daemon, cid, "/bin/cat", "/proc/self/status")
    for lines in (first, execed.stdout.decode().splitlines()):
        ignored, blocked = _signal_masks(lines)
        assert ignored & PYTHON_IGNORES == 0, f"SigIgn {ignored:016x}"
        assert blocked == 0, f"SigBlk {blocked:016x}"
    piped = exec_sync(env.daemon, cid, "/bin/sh", "-c", "yes | head -c 10")
    assert (piped.exit_code, piped.stdout, piped.stderr) == (0, b"y\ny\ny\ny\ny\n", b"")
