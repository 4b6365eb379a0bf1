"""A container killed by the OOM killer: its status says so, and conmon leaves no
``oom`` file outside the container's bundle."""

from __future__ import annotations

from pathlib import Path

from cri_api.v1 import api_pb2

from e2e.containers.conftest import Env, Pod
from e2e.containers.helpers import create, wait_state


def test_oom_killed_container_leaves_nothing_in_crids_working_dir(env: Env, pod: Pod) -> None:
    d = env.daemon
    assert d.process is not None
    stray = Path(f"/proc/{d.process.pid}/cwd").resolve() / "oom"
    stray.unlink(missing_ok=True)  # only ever left there by this bug
    limit = 16 * 1024 * 1024
    # tail keeps a line without newline in memory: it grows until killed.
    cid = create(d, pod.id, pod.config, env.image,
                 command=["/bin/sh", "-c", "head -c 200000000 /dev/zero | tail -n 1"],
                 linux=api_pb2.LinuxContainerConfig(resources=api_pb2.LinuxContainerResources(
                     memory_limit_in_bytes=limit)))
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    status = wait_state(d, cid, api_pb2.CONTAINER_EXITED, timeout=30)
    assert status.reason == "OOMKilled"
    assert not stray.exists(), f"conmon wrote {stray}"
    d.runtime.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid))
