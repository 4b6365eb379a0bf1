"""A SIGKILLed ``crid-runtime create``: CreateContainer ends within seconds,
and a failed one leaves nothing (issue 20: the chaos test's create hang).

conmon starts ``crid-runtime create``, which forks a first child, which forks
the container's init and exits; init ends blocked on the exec fifo, waiting
for ``start``. Each round issues a CreateContainer and, while it is in
flight, SIGKILLs part of that tree:

- ``pidfile``: the create once init waits on the exec fifo and the create
  still has its pid file to write. Made certain, not left to timing: a FIFO
  planted at the pid file's temp name (``.pidfile.tmp``, beside it in the
  bundle) holds the create in ``open`` there. Before the fix this round hung:
  init kept conmon's stderr pipe open, so conmon, which reads the runtime's
  error from that pipe once the runtime has failed, blocked in that read and
  never reported; CreateContainer waited for it (``monitor.SYNC_TIMEOUT``).
- ``create``: the create, at a random moment of its life;
- ``family``: the create, its first child and init, at a random moment;
- ``child``: only the first child, at a random moment (one killed between
  forking init and reporting init's pid could leave the create and init
  waiting on each other: the create now watches it by pidfd).

Every call must end within ``BOUND`` seconds of the kill: a created
container must start and run a command; a failed call must say why, leave no
bundle, layer, runtime state, mount, cgroup, conmon or runtime process, and
``crid check`` must be clean at the end. ``CRID_RUNTIME_KILLED_SEED=<n>``
replays a run's random choices (its timing still varies).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import random
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import grpc
import pytest
from cri_api.v1 import api_pb2

from e2e.chaos import invariants, killer
from e2e.containers.helpers import exec_sync, wait_state
from e2e.fixtures.daemon import CridDaemon
from e2e.fixtures.images import busybox_image, push
from e2e.fixtures.registry import Registry
from e2e.sandbox.pods import PodNet, pod_config, pod_daemon, run_pod

MODES = ("pidfile", "create", "family", "child")
ROUNDS = 32  # eight of each mode
BOUND = 10.0  # seconds from the kill to the call's end
CALL_DEADLINE = 45.0  # the client's: well past BOUND, so a hang shows as one
FIND_WITHIN = 10.0  # for the create (or its child) to show up
POLL = 0.001
CLEAN_WITHIN = 3.0  # a failed create's conmon exits a moment after the call returns
PID_FILE_TEMP = ".pidfile.tmp"  # crid.oci.state._replace's temp name for conmon's "pidfile"

T = TypeVar("T")


@pytest.fixture(scope="module")
def env(registry: Registry) -> Iterator[tuple[CridDaemon, PodNet, str, str]]:
    pushed = push(registry, "e2e/runtime-killed", "1", busybox_image())
    with pod_daemon() as (daemon, net):
        daemon.image.PullImage(api_pb2.PullImageRequest(
            image=api_pb2.ImageSpec(image=pushed.reference)))
        config = pod_config()
        pod_id = run_pod(daemon, config)
        yield daemon, net, pod_id, pushed.reference


def test_a_killed_runtime_create_fails_fast_and_leaves_nothing(
        env: tuple[CridDaemon, PodNet, str, str]) -> None:
    daemon, net, pod_id, image = env
    seed_text = os.environ.get("CRID_RUNTIME_KILLED_SEED", "")
    seed = int(seed_text) if seed_text else random.SystemRandom().randrange(1, 10**9)
    rng = random.Random(seed)
    sandbox = daemon.runtime.PodSandboxStatus(
        api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod_id))
    assert sandbox.status.state == api_pb2.SANDBOX_READY
    outcomes: list[str] = []
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        for number in range(ROUNDS):
            mode = MODES[number % len(MODES)]
            delay = rng.uniform(0.0, 0.04 if mode != "child" else 0.01)
            where = f"CRID_RUNTIME_KILLED_SEED={seed}, round {number} ({mode}, {delay:.3f}s)"
            outcomes.append(_round(daemon, net, pod_id, image, pool, mode, delay, where))
    took = time.monotonic() - started
    print(f"runtime killed: seed {seed}, {took:.1f}s:\n  " + "\n  ".join(outcomes))
    assert invariants.crid_check(daemon, set()) == []
    # Not a test of nothing: the pidfile rounds (the ones that hung) were
    # made, and the random kills mostly hit a live process.
    assert sum(o.startswith("pidfile: killed, failed") for o in outcomes) >= 6, outcomes
    assert sum(": killed" in o for o in outcomes) >= ROUNDS // 2, outcomes


def _round(daemon: CridDaemon, net: PodNet, pod_id: str, image: str,
           pool: concurrent.futures.ThreadPoolExecutor, mode: str, delay: float,
           where: str) -> str:
    before = set(_bundles(daemon))
    config = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name=f"c-{os.urandom(3).hex()}"),
        image=api_pb2.ImageSpec(image=image), command=["/bin/sleep", "600"])
    call = pool.submit(daemon.runtime.CreateContainer, api_pb2.CreateContainerRequest(
        pod_sandbox_id=pod_id, config=config), timeout=CALL_DEADLINE)
    killed_at = KILLERS[mode](daemon, before, delay, call)
    try:
        container_id = call.result().container_id
        error = None
    except grpc.RpcError as exc:
        container_id, error = "", exc
    kill = "missed" if killed_at is None else "killed"
    took = time.monotonic() - (killed_at or 0.0)
    assert killed_at is None or took < BOUND, \
        f"{where}: CreateContainer ended {took:.1f}s after the kill ({error or 'created'})"
    if error is None:
        _assert_works(daemon, container_id, where)
        outcome = f"{mode}: {kill}, created"
    else:
        assert error.code() in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL), \
            f"{where}: {error.code()}: {error.details()}"
        if mode == "pidfile" and killed_at is not None:
            assert "died" in (error.details() or ""), f"{where}: {error.details()}"
        outcome = f"{mode}: {kill}, failed ({error.details()})"
    _assert_nothing_left(daemon, net, pod_id, where)
    return outcome


def _assert_works(daemon: CridDaemon, container_id: str, where: str) -> None:
    daemon.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=container_id))
    wait_state(daemon, container_id, api_pb2.CONTAINER_RUNNING)
    done = exec_sync(daemon, container_id, "/bin/echo", "works")
    assert (done.exit_code, done.stdout) == (0, b"works\n"), f"{where}: {done}"
    daemon.runtime.StopContainer(api_pb2.StopContainerRequest(container_id=container_id,
                                                              timeout=0))
    daemon.runtime.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=container_id))


def _assert_nothing_left(daemon: CridDaemon, net: PodNet, pod_id: str, where: str) -> None:
    listed = {c.id for c in daemon.runtime.ListContainers(
        api_pb2.ListContainersRequest()).containers}
    deadline = time.monotonic() + CLEAN_WITHIN
    while True:
        left = invariants.leaks(daemon, net, {pod_id}, listed, {pod_id}) + [
            f"runtime process {pid}" for pid in _runtime_processes(daemon)]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not left, f"{where}: left behind: {left}"


# --- the kills -------------------------------------------------------------------

Killer = Callable[[CridDaemon, set[str], float, concurrent.futures.Future[object]],
                  float | None]


def _kill_create(daemon: CridDaemon, before: set[str], delay: float,
                 call: concurrent.futures.Future[object]) -> float | None:
    return _kill_later(lambda: _first(killer.runtime_creates(daemon.runroot)), delay, call)


def _kill_family(daemon: CridDaemon, before: set[str], delay: float,
                 call: concurrent.futures.Future[object]) -> float | None:
    return _kill_later(lambda: _first(killer.runtime_creates(daemon.runroot)), delay, call,
                       family=True)


def _kill_child(daemon: CridDaemon, before: set[str], delay: float,
                call: concurrent.futures.Future[object]) -> float | None:
    def first_child() -> int | None:
        for pid in killer.runtime_creates(daemon.runroot):
            return _first(_children(pid))
        return None

    return _kill_later(first_child, delay, call)


def _kill_later(find: Callable[[], int | None], delay: float,
                call: concurrent.futures.Future[object], *, family: bool = False
                ) -> float | None:
    """Once ``find`` finds a process, wait ``delay`` and SIGKILL it (and its
    descendants with ``family``); when, if it landed on a live process."""
    pid = _await(find, call)
    if pid is None:
        return None
    time.sleep(delay)
    landed = [_kill(member) for member in [pid, *(_descendants(pid) if family else [])]]
    return time.monotonic() if any(landed) else None


def _kill_at_pid_file(daemon: CridDaemon, before: set[str], delay: float,
                      call: concurrent.futures.Future[object]) -> float | None:
    """Hold the create where it writes its pid file (init is on the exec fifo
    by then), and kill it there."""
    bundle = _await(lambda: _first(sorted(set(_bundles(daemon)) - before)), call)
    if bundle is None:
        return None
    os.mkfifo(daemon.runroot / "containers" / bundle / PID_FILE_TEMP, 0o600)
    pid = _await(lambda: _first([p for p in killer.runtime_creates(daemon.runroot)
                                 if _blocked_on_fifo(p)]), call)
    if pid is None:
        return None
    time.sleep(delay / 10)
    return time.monotonic() if _kill(pid) else None


KILLERS: dict[str, Killer] = {"pidfile": _kill_at_pid_file, "create": _kill_create,
                              "family": _kill_family, "child": _kill_child}


# --- processes -------------------------------------------------------------------

def _await(find: Callable[[], T | None], call: concurrent.futures.Future[object]) -> T | None:
    """What ``find`` finds, polled until the call ends (then None)."""
    deadline = time.monotonic() + FIND_WITHIN
    while not call.done() and time.monotonic() < deadline:
        found = find()
        if found is not None:
            return found
        time.sleep(POLL)
    return None


def _first(items: Sequence[T]) -> T | None:
    return items[0] if items else None


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _descendants(pid: int) -> list[int]:
    found = []
    for child in _children(pid):
        found += [child, *_descendants(child)]
    return found


def _blocked_on_fifo(pid: int) -> bool:
    """Is ``pid`` in an open of a FIFO, waiting for the other end?"""
    try:
        return "fifo_open" in Path(f"/proc/{pid}/stack").read_text()
    except OSError:
        return False


def _runtime_processes(daemon: CridDaemon) -> list[int]:
    """Every crid-runtime process (create, its children, init) of a bundle of ours."""
    bundles = f"{daemon.runroot}/containers/"
    return [pid for pid, argv in killer.command_lines()
            if any(a.endswith("crid-runtime") for a in argv[:3])
            and any(a.startswith(bundles) for a in argv)]


def _bundles(daemon: CridDaemon) -> list[str]:
    directory = daemon.runroot / "containers"
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


def _kill(pid: int) -> bool:
    """SIGKILL ``pid``; did it land on a live process?"""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False  # it ended first
    if state == "Z":
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
        return True
    return False
