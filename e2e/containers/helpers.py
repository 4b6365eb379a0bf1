"""Making, starting and reading containers in e2e tests."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from cri_api.v1 import api_pb2

from e2e.containers.conftest import Env, Pod
from e2e.fixtures.daemon import CridDaemon, mounts_under
from e2e.fixtures.images import Image, push
from e2e.fixtures.registry import Registry


def create(daemon: CridDaemon, pod_id: str, sandbox: api_pb2.PodSandboxConfig, image: str,
           *, name: str | None = None, **fields: Any) -> str:
    config = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name=name or f"c-{uuid.uuid4().hex[:6]}"),
        image=api_pb2.ImageSpec(image=image), **fields)
    return str(daemon.runtime.CreateContainer(api_pb2.CreateContainerRequest(
        pod_sandbox_id=pod_id, config=config, sandbox_config=sandbox)).container_id)


def status(daemon: CridDaemon, container_id: str) -> api_pb2.ContainerStatus:
    found: api_pb2.ContainerStatus = daemon.runtime.ContainerStatus(
        api_pb2.ContainerStatusRequest(container_id=container_id)).status
    return found


def wait_state(daemon: CridDaemon, container_id: str, state: int,
               timeout: float = 15) -> api_pb2.ContainerStatus:
    deadline = time.monotonic() + timeout
    while (found := status(daemon, container_id)).state != state:
        assert time.monotonic() < deadline, f"container stayed {found.state}, wanted {state}"
        time.sleep(0.05)
    return found


def exec_sync(daemon: CridDaemon, container_id: str, *cmd: str,
              timeout: int = 10) -> api_pb2.ExecSyncResponse:
    response: api_pb2.ExecSyncResponse = daemon.runtime.ExecSync(api_pb2.ExecSyncRequest(
        container_id=container_id, cmd=list(cmd), timeout=timeout))
    return response


def run(daemon: CridDaemon, pod_id: str, sandbox: api_pb2.PodSandboxConfig, image: str,
        **fields: Any) -> str:
    """Create and start a container (``sleep`` by default) and wait until it runs."""
    fields.setdefault("command", ["/bin/sleep", "600"])
    cid = create(daemon, pod_id, sandbox, image, **fields)
    daemon.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    wait_state(daemon, cid, api_pb2.CONTAINER_RUNNING)
    return cid


def run_to_exit(daemon: CridDaemon, pod_id: str, sandbox: api_pb2.PodSandboxConfig,
                image: str, **fields: Any) -> tuple[api_pb2.ContainerStatus, list[str]]:
    """Create and start a container, wait for its exit; its status and log texts."""
    fields.setdefault("log_path", f"{uuid.uuid4().hex[:8]}.log")
    cid = create(daemon, pod_id, sandbox, image, **fields)
    daemon.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    done = wait_state(daemon, cid, api_pb2.CONTAINER_EXITED)
    return done, log_texts(done.log_path)


def log_lines(path: str) -> list[tuple[str, str, str]]:
    """(stream, P|F tag, text) of each CRI log line."""
    found = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            _, stream, tag, text = [*line.rstrip("\n").split(" ", 3), ""][:4]
            found.append((stream, tag, text))
    return found


def log_texts(path: str) -> list[str]:
    return [text for _, _, text in log_lines(path)]


def sh(daemon: CridDaemon, container_id: str, script: str) -> str:
    """Run a shell script in the container; it must succeed; its stdout."""
    out = exec_sync(daemon, container_id, "/bin/sh", "-c", script)
    assert out.exit_code == 0, (out.stdout, out.stderr)
    return str(out.stdout.decode())


def verbose_pid(daemon: CridDaemon, container_id: str) -> int:
    info = daemon.runtime.ContainerStatus(api_pb2.ContainerStatusRequest(
        container_id=container_id, verbose=True)).info["info"]
    return int(json.loads(info)["pid"])


def pull(daemon: CridDaemon, registry: Registry, image: Image) -> str:
    """Push ``image`` to the test registry, pull it into the daemon; its reference."""
    pushed = push(registry, f"e2e/c-{image.config_blob.digest[7:19]}", "1", image)
    daemon.image.PullImage(api_pb2.PullImageRequest(
        image=api_pb2.ImageSpec(image=pushed.reference)))
    return pushed.reference


def leftovers(env: Env, pod: Pod) -> dict[str, list[str]]:
    """What a container leaves on the node. The pod's own cgroup dirs are the
    pod's (the runtime adds them in hierarchies like name=systemd)."""
    d = env.daemon
    return {
        "bundles": sorted(p.name for p in (d.runroot / "containers").glob("*")),
        "layers": sorted(p.name for p in (d.root / "containers").glob("*")),
        "exit files": sorted(p.name for p in (d.runroot / "exits").glob("*")),
        "mounts": mounts_under(d.runroot) + mounts_under(d.root),
        "cgroups": sorted(str(p) for p in env.net.cgroup_dirs() if not p.name.endswith(pod.id)),
        "rows": sorted(c.id for c in d.runtime.ListContainers(
            api_pb2.ListContainersRequest()).containers),
    }


def assert_unchanged(env: Env, pod: Pod, before: dict[str, list[str]]) -> None:
    after = leftovers(env, pod)
    changed = {k: [f"+{x}" for x in sorted(set(after[k]) - set(before[k]))]
               + [f"-{x}" for x in sorted(set(before[k]) - set(after[k]))] for k in after}
    assert not any(changed.values()), changed


def gone_or_zombie(pid: int, within: float = 0.0) -> bool:
    """Has ``pid`` exited (reaped, or a zombie nobody reaps), now or within ``within``
    seconds?"""
    deadline = time.monotonic() + within
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):  # reaped before, or between open and read
            return True
        if state == "Z":
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
