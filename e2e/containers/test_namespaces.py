"""PID namespace options of a container: POD, CONTAINER, TARGET and NODE."""

from __future__ import annotations

import os
from pathlib import Path

from cri_api.v1 import api_pb2

from e2e.containers.conftest import Env, Pod, PodMaker
from e2e.containers.helpers import run, sh
from e2e.sandbox.pods import namespace_options

PROCESSES = "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done"


def pid_mode(mode: api_pb2.NamespaceMode.ValueType, target: str = ""
             ) -> api_pb2.LinuxContainerConfig:
    return api_pb2.LinuxContainerConfig(security_context=api_pb2.LinuxContainerSecurityContext(
        namespace_options=api_pb2.NamespaceOption(pid=mode, target_id=target)))


def processes(env: Env, cid: str) -> list[str]:
    return [line.strip() for line in sh(env.daemon, cid, PROCESSES).splitlines() if line.strip()]


def pid1(env: Env, cid: str) -> str:
    return sh(env.daemon, cid, "tr '\\0' ' ' < /proc/1/cmdline").strip()


def test_pod_pid_namespace_is_shared(env: Env, make_pod: PodMaker) -> None:
    pod = make_pod(linux=namespace_options(pid=api_pb2.POD))
    run(env.daemon, pod.id, pod.config, env.image, command=["/bin/sleep", "601"],
        linux=pid_mode(api_pb2.POD))
    other = run(env.daemon, pod.id, pod.config, env.image, command=["/bin/sleep", "602"],
                linux=pid_mode(api_pb2.POD))
    assert "/bin/sleep 601" in processes(env, other)
    assert "sleep" not in pid1(env, other)  # the pod's infra process is PID 1


def test_container_pid_namespace_is_its_own(env: Env, pod: Pod) -> None:
    run(env.daemon, pod.id, pod.config, env.image, command=["/bin/sleep", "601"],
        linux=pid_mode(api_pb2.CONTAINER))
    other = run(env.daemon, pod.id, pod.config, env.image, command=["/bin/sleep", "602"],
                linux=pid_mode(api_pb2.CONTAINER))
    assert pid1(env, other) == "/bin/sleep 602"
    assert "/bin/sleep 601" not in processes(env, other)


def test_target_pid_namespace_is_another_containers(env: Env, pod: Pod) -> None:
    target = run(env.daemon, pod.id, pod.config, env.image, command=["/bin/sleep", "601"],
                 linux=pid_mode(api_pb2.CONTAINER))
    debug = run(env.daemon, pod.id, pod.config, env.image, command=["/bin/sleep", "602"],
                linux=pid_mode(api_pb2.TARGET, target))
    assert pid1(env, debug) == "/bin/sleep 601"
    assert "/bin/sleep 602" in processes(env, debug)


def test_node_pid_namespace_sees_the_host(env: Env, make_pod: PodMaker) -> None:
    pod = make_pod(linux=namespace_options(pid=api_pb2.NODE))
    cid = run(env.daemon, pod.id, pod.config, env.image, linux=pid_mode(api_pb2.NODE))
    own = Path(f"/proc/{os.getpid()}/cmdline").read_text()
    assert sh(env.daemon, cid, f"tr '\\0' ' ' < /proc/{os.getpid()}/cmdline") == \
        own.replace("\0", " ")
