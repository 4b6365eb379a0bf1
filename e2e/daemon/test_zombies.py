"""crid reaps the monitors it starts under a PID 1 that never reaps.

conmon daemonises, so its monitor process is an orphan the kernel hands to
the nearest child subreaper above it, else to PID 1. Here crid runs under a
stand-in for an init that never reaps: a child subreaper (so orphans below
crid would land on it, as on PID 1) that waits for crid alone. 50
containers run to completion (create, start, exit, remove), and a few
creates fail in the runtime; then no zombie may be left under that init or
under crid. A restarted crid is checked the
same way.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cri_api.v1 import api_pb2

from e2e.containers.helpers import create, wait_state
from e2e.fixtures.daemon import CridDaemon, remove_workdir
from e2e.fixtures.images import busybox_image, push
from e2e.fixtures.registry import Registry
from e2e.sandbox.pods import namespace_options, pod_config, run_pod, stop_remove

CONTAINERS = 50
SETTLE_SECONDS = 10.0  # crid's sweep runs every 2 s and reaps a zombie seen twice

# PID 1 that never reaps: a child subreaper that waits for crid and nothing else
# (a blocking wait on crid's pid alone), passing SIGTERM/SIGINT on to it.
NON_REAPING_INIT = """
import ctypes, os, signal, sys
if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
    sys.exit("prctl failed")
child = os.fork()
if child == 0:
    os.execv(sys.argv[1], sys.argv[1:])
for signum in (signal.SIGTERM, signal.SIGINT):
    signal.signal(signum, lambda signum, _frame: os.kill(child, signum))
while True:
    try:
        _, status = os.waitpid(child, 0)
        break
    except InterruptedError:
        continue
os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
"""


class UnderInit(CridDaemon):
    """A crid whose parent is the non-reaping init; ``process`` is that init."""

    def command(self) -> list[str]:
        return [sys.executable, "-c", NON_REAPING_INIT, *super().command()]

    @property
    def init_pid(self) -> int:
        assert self.process is not None
        return self.process.pid


def status_fields(pid: int) -> dict[str, str]:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def zombies_under(*parents: int) -> list[tuple[int, str]]:
    """(pid, name) of every zombie whose parent is one of ``parents``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = status_fields(int(entry.name))
        if fields.get("State", "").startswith("Z") and int(fields.get("PPid", 0)) in parents:
            found.append((int(entry.name), fields.get("Name", "")))
    return found


def crid_pid(daemon: UnderInit) -> int:
    children = Path(f"/proc/{daemon.init_pid}/task/{daemon.init_pid}/children").read_text()
    (pid,) = (int(p) for p in children.split() if status_fields(int(p)).get("Name") == "crid")
    return pid


def settled_zombies(daemon: UnderInit) -> list[tuple[int, str]]:
    """Zombies under the init and crid, once crid's sweep had time to run."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while (found := zombies_under(daemon.init_pid, crid_pid(daemon))) and \
            time.monotonic() < deadline:
        time.sleep(0.5)
    return found


@pytest.fixture
def daemon(registry: Registry, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[UnderInit]:
    workdir = tmp_path_factory.mktemp("crid-zombies")
    found = UnderInit(workdir)
    try:
        found.start()
        yield found
    finally:
        found.stop()
        remove_workdir(workdir)


def run_to_completion(daemon: CridDaemon, pod_id: str, config: api_pb2.PodSandboxConfig,
                      image: str, count: int) -> None:
    for n in range(count):
        cid = create(daemon, pod_id, config, image, name=f"z{n}",
                     command=["/bin/sh", "-c", "exit 3"])
        daemon.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
        assert wait_state(daemon, cid, api_pb2.CONTAINER_EXITED).exit_code == 3
        daemon.runtime.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid))


def test_no_zombies_after_50_containers_under_a_non_reaping_init(
        daemon: UnderInit, registry: Registry) -> None:
    image = push(registry, "e2e/zombies", uuid.uuid4().hex[:8], busybox_image()).reference
    daemon.image.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=image)))
    config = pod_config(linux=namespace_options(network=api_pb2.NODE))
    pod_id = run_pod(daemon, config)
    # A container that outlives the restart below: its monitor is adopted by
    # the first crid, then, when that one exits, by the init.
    survivor = create(daemon, pod_id, config, image, command=["/bin/sleep", "600"])
    daemon.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=survivor))

    run_to_completion(daemon, pod_id, config, image, CONTAINERS)
    assert settled_zombies(daemon) == []
    # Creates the runtime refuses: each monitor exits before crid watches it,
    # so only the sweep of crid's children reaps those.
    for n in range(5):
        with pytest.raises(grpc.RpcError):
            create(daemon, pod_id, config, image, name=f"refused{n}", command=["/nonexistent"])
    assert settled_zombies(daemon) == []

    # A restarted crid reaps the monitors it starts in its turn.
    daemon.stop()
    daemon.start()
    run_to_completion(daemon, pod_id, config, image, 10)
    assert settled_zombies(daemon) == []
    daemon.runtime.StopContainer(api_pb2.StopContainerRequest(container_id=survivor, timeout=1))
    stop_remove(daemon, pod_id)


