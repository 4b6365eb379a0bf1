"""NRI plugins against a real daemon: adjustments land in containers; bad plugins don't hurt.

Our own plugins (``e2e.nri.plugin``, over crid's ttrpc code) inject an env
var, a mount and an OCI hook; others hang, return errors or send garbage
frames. Pods and containers still run, errors are clear and counted, and a
failed hook leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from cri_api.v1 import api_pb2
from crid.api import nri_pb2
from prometheus_client.parser import text_string_to_metric_families

from e2e.containers.helpers import create, log_texts, wait_state
from e2e.fixtures.daemon import CridDaemon, DaemonFactory, mounts_under
from e2e.fixtures.images import RunConfig, busybox_image, push
from e2e.fixtures.registry import Registry
from e2e.nri.plugin import ScriptedPlugin
from e2e.sandbox.pods import (
    PodNet,
    info,
    namespace_options,
    pod_config,
    pod_daemon,
    stop_remove,
)

REQUEST_TIMEOUT = 1.0


@dataclass
class Env:
    daemon: CridDaemon
    net: PodNet
    image: str
    socket: str
    host_dir: Path  # shared with containers by the injected mount


@pytest.fixture(scope="module")
def env(registry: Registry) -> Iterator[Env]:
    pushed = push(registry, "e2e/busybox", "1",
                  busybox_image(config=RunConfig(cmd=("/bin/sh",), env=("PATH=/bin",))))
    scratch = Path(tempfile.mkdtemp(prefix="crid-nri-", dir="/tmp"))
    socket = str(scratch / "nri.sock")
    toml = (f'[crid.nri]\nenable = true\nsocket_path = "{socket}"\nplugin_path = ""\n'
            f"request_timeout_ms = {int(REQUEST_TIMEOUT * 1000)}\n"
            "registration_timeout_ms = 2000\n")
    host_dir = scratch / "shared"
    host_dir.mkdir()
    (host_dir / "hello").write_text("from the host\n")
    cdi_dir = scratch / "cdi"  # a device plugins may hand out through CDI
    cdi_dir.mkdir()
    (cdi_dir / "nri-test.json").write_text(json.dumps({
        "cdiVersion": "0.8.0", "kind": "nri.test/dev",
        "devices": [{"name": "null", "containerEdits": {
            "env": ["CDI_BY_NRI=null"],
            "deviceNodes": [{"path": "/dev/nri-null", "hostPath": "/dev/null"}]}}]}))
    toml += f'[crid.cdi]\nspec_dirs = ["{cdi_dir}"]\n'
    try:
        with pod_daemon(extra_toml=toml) as (daemon, net):
            daemon.image.PullImage(api_pb2.PullImageRequest(
                image=api_pb2.ImageSpec(image=pushed.reference)))
            yield Env(daemon, net, pushed.reference, socket, host_dir)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture
def plugins(env: Env) -> Iterator[list[ScriptedPlugin]]:
    started: list[ScriptedPlugin] = []
    yield started
    for plugin in started:
        plugin.stop()


def _plugin(env: Env, plugins: list[ScriptedPlugin], name: str, **knobs: object) -> ScriptedPlugin:
    plugin = ScriptedPlugin(env.socket, name, **knobs)  # type: ignore[arg-type]
    plugins.append(plugin)
    return plugin.start()


def _pod(env: Env, handler: str = "crid") -> tuple[str, api_pb2.PodSandboxConfig]:
    config = pod_config(log_directory=tempfile.mkdtemp(prefix="logs-", dir=env.host_dir.parent))
    pod_id = env.daemon.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(
        config=config, runtime_handler=handler)).pod_sandbox_id
    return str(pod_id), config


def _errors(env: Env) -> dict[tuple[str, str], float]:
    text = httpx.get(env.daemon.metrics_url, timeout=10).text
    return {(s.labels["plugin"], s.labels["kind"]): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == "crid_nri_plugin_errors_total"}


def _gauge(env: Env) -> float:
    text = httpx.get(env.daemon.metrics_url, timeout=10).text
    return next(s.value for family in text_string_to_metric_families(text)
                for s in family.samples if s.name == "crid_nri_plugins")


def _wait(predicate: object, timeout: float = 10) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


@pytest.mark.parametrize("handler", ["crid", "runc"])
def test_plugin_injects_env_mount_and_hook(env: Env, plugins: list[ScriptedPlugin],
                                           handler: str) -> None:
    hook_out = env.host_dir / f"hook-{uuid.uuid4().hex[:6]}.json"

    def adjust(pod: nri_pb2.PodSandbox, container: nri_pb2.Container
               ) -> nri_pb2.ContainerAdjustment:
        result = nri_pb2.ContainerAdjustment(
            env=[nri_pb2.KeyValue(key="NRI_INJECTED", value=f"for-{container.name}")],
            mounts=[nri_pb2.Mount(destination="/nri", source=str(env.host_dir), type="bind",
                                  options=["rbind", "ro"])])
        result.hooks.create_runtime.add(path="/bin/sh",
                                        args=["sh", "-c", f"cat > {hook_out}"])
        return result

    _plugin(env, plugins, "inject", adjust=adjust)
    pod_id, config = _pod(env, handler)
    try:
        cid = create(env.daemon, pod_id, config, env.image, name="app", log_path="app.log",
                     command=["/bin/sh", "-c",
                              'echo "$NRI_INJECTED"; cat /nri/hello; sleep 0.5'])
        env.daemon.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
        done = wait_state(env.daemon, cid, api_pb2.CONTAINER_EXITED)
        assert done.exit_code == 0
        assert log_texts(done.log_path) == ["for-app", "from the host"]
        state = json.loads(hook_out.read_text())  # the OCI state the runtime gave the hook
        assert state["id"] == cid
        _wait(lambda: "StopContainer" in plugins[0].methods())
    finally:
        stop_remove(env.daemon, pod_id)
    _wait(lambda: "RemovePodSandbox" in plugins[0].methods())
    methods = plugins[0].methods()
    assert methods[:2] == ["Configure", "Synchronize"]
    # the container exited by itself; removing the pod removes it
    order = ["RunPodSandbox", "CreateContainer", "PostCreateContainer", "StartContainer",
             "PostStartContainer", "StopContainer", "StopPodSandbox", "RemoveContainer",
             "RemovePodSandbox"]
    assert [m for m in methods if m in order] == order


def test_plugin_cdi_devices_resolve_through_the_daemons_cdi_specs(
        env: Env, plugins: list[ScriptedPlugin]) -> None:
    wanted = {"app": "nri.test/dev=null", "unknown": "nri.test/dev=missing"}

    def cdi(pod: nri_pb2.PodSandbox, container: nri_pb2.Container
            ) -> nri_pb2.ContainerAdjustment:
        return nri_pb2.ContainerAdjustment(
            CDI_devices=[nri_pb2.CDIDevice(name=wanted[container.name])])

    _plugin(env, plugins, "cdi", adjust=cdi)
    pod_id, config = _pod(env)
    try:
        cid = create(env.daemon, pod_id, config, env.image, name="app", log_path="app.log",
                     command=["/bin/sh", "-c",
                              'echo "$CDI_BY_NRI"; echo x > /dev/nri-null && echo written'])
        env.daemon.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
        done = wait_state(env.daemon, cid, api_pb2.CONTAINER_EXITED)
        assert (done.exit_code, log_texts(done.log_path)) == (0, ["null", "written"])
        with pytest.raises(grpc.RpcError) as failed:
            create(env.daemon, pod_id, config, env.image, name="unknown", log_path="u.log",
                   command=["/bin/true"])
        assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "nri.test/dev=missing" in str(failed.value.details())
        listed = env.daemon.runtime.ListContainers(api_pb2.ListContainersRequest(
            filter=api_pb2.ContainerFilter(pod_sandbox_id=pod_id))).containers
        assert [c.metadata.name for c in listed] == ["app"]
    finally:
        stop_remove(env.daemon, pod_id)


def test_two_plugins_adjusting_one_field_fail_the_create_naming_both(
        env: Env, plugins: list[ScriptedPlugin]) -> None:
    def same_env(pod: nri_pb2.PodSandbox, c: nri_pb2.Container) -> nri_pb2.ContainerAdjustment:
        return nri_pb2.ContainerAdjustment(env=[nri_pb2.KeyValue(key="OWNED", value="x")])

    _plugin(env, plugins, "first", index="10", adjust=same_env)
    _plugin(env, plugins, "second", index="20", adjust=same_env)
    pod_id, config = _pod(env)
    try:
        with pytest.raises(grpc.RpcError) as failed:
            create(env.daemon, pod_id, config, env.image, command=["/bin/true"])
        assert "10-first and 20-second both adjust env OWNED" in str(failed.value.details())
        assert not env.daemon.runtime.ListContainers(api_pb2.ListContainersRequest(
            filter=api_pb2.ContainerFilter(pod_sandbox_id=pod_id))).containers
    finally:
        stop_remove(env.daemon, pod_id)


def test_plugin_error_fails_run_pod_and_leaves_nothing(env: Env,
                                                       plugins: list[ScriptedPlugin]) -> None:
    plugin = _plugin(env, plugins, "refuser", fail={"RunPodSandbox"})
    before_mounts = mounts_under(env.daemon.runroot)
    config = pod_config()
    with pytest.raises(grpc.RpcError) as failed:
        env.daemon.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=config))
    assert failed.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "NRI plugin 00-refuser failed RUN_POD_SANDBOX: refuser refuses RunPodSandbox" in str(
        failed.value.details())
    assert not env.daemon.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items
    assert mounts_under(env.daemon.runroot) == before_mounts
    assert not list((env.daemon.runroot / "pods").glob("*"))
    assert _errors(env)[("00-refuser", "error")] >= 1
    plugin.stop()  # the error clears with the plugin: the same pod runs now
    _wait(lambda: _gauge(env) == 0)
    pod_id = env.daemon.runtime.RunPodSandbox(
        api_pb2.RunPodSandboxRequest(config=config)).pod_sandbox_id
    stop_remove(env.daemon, pod_id)


def test_hanging_plugin_is_dropped_and_the_pod_runs(env: Env,
                                                    plugins: list[ScriptedPlugin]) -> None:
    hung = _plugin(env, plugins, "sleepy", hang={"CreateContainer"})
    pod_id, config = _pod(env)
    try:
        started = time.monotonic()
        cid = create(env.daemon, pod_id, config, env.image, command=["/bin/sleep", "60"])
        assert time.monotonic() - started < REQUEST_TIMEOUT + 5
        env.daemon.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
        wait_state(env.daemon, cid, api_pb2.CONTAINER_RUNNING)
        assert hung.closed.wait(5), "crid kept the hung plugin's connection"
        assert _errors(env)[("00-sleepy", "timeout")] >= 1
        assert "StartContainer" not in hung.methods()  # no events after it was dropped
    finally:
        stop_remove(env.daemon, pod_id)
    _wait(lambda: _gauge(env) == 0)


def test_garbage_frames_disconnect_only_that_plugin(env: Env,
                                                    plugins: list[ScriptedPlugin]) -> None:
    good = _plugin(env, plugins, "good", index="01")
    bad = ScriptedPlugin(env.socket, "vandal", garbage=True)
    plugins.append(bad)
    bad.start(wait_synced=False)
    assert bad.closed.wait(10), "crid kept a connection that broke the framing"
    pod_id, config = _pod(env)
    try:
        cid = create(env.daemon, pod_id, config, env.image, command=["/bin/sleep", "60"])
        assert ("CreateContainer", pod_id, cid) in good.calls
    finally:
        stop_remove(env.daemon, pod_id)
    assert "crid.nri" in env.daemon.stderr_text()
    assert "protocol error" in env.daemon.stderr_text()


def test_late_plugin_is_synchronized_with_existing_pods(env: Env,
                                                        plugins: list[ScriptedPlugin]) -> None:
    pod_id, config = _pod(env)
    try:
        cid = create(env.daemon, pod_id, config, env.image, command=["/bin/sleep", "60"])
        late = _plugin(env, plugins, "late")
        assert ("Synchronize", "1", "1") in late.calls
        env.daemon.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
        assert ("StartContainer", pod_id, cid) in late.calls
    finally:
        stop_remove(env.daemon, pod_id)


PREINSTALLED = """#!{python} -P
# A pre-installed NRI plugin: crid starts it with one end of a socket pair.
import os, socket
from crid.api import nri_pb2
from e2e.nri.plugin import ScriptedPlugin

def adjust(pod, container):
    key, _, value = plugin.config.strip().partition("=")
    return nri_pb2.ContainerAdjustment(env=[nri_pb2.KeyValue(key=key, value=value)])

open({pid_file!r}, "w").write(str(os.getpid()))
plugin = ScriptedPlugin("", os.environ["NRI_PLUGIN_NAME"], os.environ["NRI_PLUGIN_IDX"],
                        sock=socket.socket(fileno=int(os.environ["NRI_PLUGIN_SOCKET"])),
                        adjust=adjust)
plugin.start()
plugin.wait()
"""


def test_preinstalled_plugin_is_started_configured_and_stopped(registry: Registry,
                                                              tmp_path: Path) -> None:
    plugins, configs = tmp_path / "plugins", tmp_path / "conf.d"
    plugins.mkdir()
    configs.mkdir()
    pid_file = tmp_path / "plugin.pid"
    script = plugins / "05-preinstalled"
    script.write_text(PREINSTALLED.format(python=sys.executable, pid_file=str(pid_file)))
    script.chmod(0o755)
    (plugins / "not-a-plugin").write_text("ignored: no NN- index\n")
    (configs / "05-preinstalled.conf").write_text("FROM_CONFIG=configured\n")
    pushed = push(registry, "e2e/busybox", "1",
                  busybox_image(config=RunConfig(cmd=("/bin/sh",), env=("PATH=/bin",))))
    toml = (f'[crid.nri]\nenable = true\nsocket_path = "{tmp_path / "nri.sock"}"\n'
            f'plugin_path = "{plugins}"\nplugin_config_path = "{configs}"\n')
    with pod_daemon(extra_toml=toml) as (daemon, _net):
        daemon.image.PullImage(api_pb2.PullImageRequest(
            image=api_pb2.ImageSpec(image=pushed.reference)))
        config = pod_config(log_directory=str(tmp_path / "logs"))
        pod_id = daemon.runtime.RunPodSandbox(
            api_pb2.RunPodSandboxRequest(config=config)).pod_sandbox_id
        cid = create(daemon, pod_id, config, pushed.reference, log_path="c.log",
                     command=["/bin/sh", "-c", 'echo "$FROM_CONFIG"'])
        daemon.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
        done = wait_state(daemon, cid, api_pb2.CONTAINER_EXITED)
        assert log_texts(done.log_path) == ["configured"]
        stop_remove(daemon, pod_id)
        pid = int(pid_file.read_text())
    _wait(lambda: not Path(f"/proc/{pid}").exists() or
          Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z")


def test_older_plugin_gets_events_as_state_changes(env: Env, plugins: list[ScriptedPlugin]
                                                   ) -> None:
    old = _plugin(env, plugins, "old", legacy=True)
    pod_id, _ = _pod(env)
    stop_remove(env.daemon, pod_id)
    _wait(lambda: ("StateChange:REMOVE_POD_SANDBOX", pod_id, "") in old.calls)
    assert ("StateChange:RUN_POD_SANDBOX", pod_id, "") in old.calls


def test_plugin_updates_and_evicts_through_the_cri_paths(env: Env,
                                                         plugins: list[ScriptedPlugin]) -> None:
    plugin = _plugin(env, plugins, "tuner")
    pod_id, config = _pod(env)
    try:
        cid = create(env.daemon, pod_id, config, env.image, command=["/bin/sleep", "600"])
        env.daemon.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
        wait_state(env.daemon, cid, api_pb2.CONTAINER_RUNNING)
        update = nri_pb2.ContainerUpdate(container_id=cid)
        update.linux.resources.memory.limit.value = 64 << 20
        update.linux.resources.cpu.shares.value = 512
        missing = nri_pb2.ContainerUpdate(container_id="no-such-container")
        missing.linux.resources.cpu.shares.value = 2
        reply = plugin.update_containers(nri_pb2.UpdateContainersRequest(
            update=[update, missing]))
        assert [u.container_id for u in reply.failed] == ["no-such-container"]
        resources = env.daemon.runtime.ContainerStatus(api_pb2.ContainerStatusRequest(
            container_id=cid)).status.resources.linux
        assert (resources.memory_limit_in_bytes, resources.cpu_shares) == (64 << 20, 512)
        plugin.update_containers(nri_pb2.UpdateContainersRequest(
            evict=[nri_pb2.ContainerEviction(container_id=cid, reason="make room")]))
        wait_state(env.daemon, cid, api_pb2.CONTAINER_EXITED)
    finally:
        stop_remove(env.daemon, pod_id)


def test_plugins_see_resource_updates_and_may_amend_or_refuse_them(
        env: Env, plugins: list[ScriptedPlugin]) -> None:
    def amend(request: nri_pb2.UpdateContainerRequest) -> list[nri_pb2.ContainerUpdate]:
        update = nri_pb2.ContainerUpdate(container_id=request.container.id)
        update.linux.resources.cpu.shares.value = 768  # on top of what kubelet asked
        return [update]

    plugin = _plugin(env, plugins, "amender", amend=amend)
    pod_id, config = _pod(env)
    try:
        cid = create(env.daemon, pod_id, config, env.image, command=["/bin/sleep", "600"])
        env.daemon.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
        wait_state(env.daemon, cid, api_pb2.CONTAINER_RUNNING)
        env.daemon.runtime.UpdateContainerResources(api_pb2.UpdateContainerResourcesRequest(
            container_id=cid, linux=api_pb2.LinuxContainerResources(
                memory_limit_in_bytes=96 << 20, cpu_shares=256)))
        resources = env.daemon.runtime.ContainerStatus(api_pb2.ContainerStatusRequest(
            container_id=cid)).status.resources.linux
        assert (resources.memory_limit_in_bytes, resources.cpu_shares) == (96 << 20, 768)
        _wait(lambda: ("PostUpdateContainer", pod_id, cid) in plugin.calls)
        plugin.fail.add("UpdateContainer")
        with pytest.raises(grpc.RpcError) as refused:
            env.daemon.runtime.UpdateContainerResources(api_pb2.UpdateContainerResourcesRequest(
                container_id=cid, linux=api_pb2.LinuxContainerResources(cpu_shares=2)))
        assert "amender refuses UpdateContainer" in str(refused.value.details())
        assert env.daemon.runtime.ContainerStatus(api_pb2.ContainerStatusRequest(
            container_id=cid)).status.resources.linux.cpu_shares == 768
        env.daemon.runtime.UpdatePodSandboxResources(api_pb2.UpdatePodSandboxResourcesRequest(
            pod_sandbox_id=pod_id, resources=api_pb2.LinuxContainerResources(
                memory_limit_in_bytes=512 << 20)))
        _wait(lambda: ("PostUpdatePodSandbox", pod_id, "") in plugin.calls)
        assert ("UpdatePodSandbox", pod_id, "") in plugin.calls
    finally:
        stop_remove(env.daemon, pod_id)


def test_a_socket_another_runtime_serves_is_left_alone(crid_factory: DaemonFactory,
                                                       tmp_path: Path) -> None:
    """containerd on the same node keeps its NRI socket; crid runs on without NRI."""
    path = tmp_path / "nri.sock"
    with socket.socket(socket.AF_UNIX) as other:
        other.bind(str(path))
        other.listen()
        daemon = crid_factory(config_toml=f'[crid.nri]\nsocket_path = "{path}"\n')
        assert daemon.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest()) is not None
        assert "nri disabled: socket in use" in daemon.stderr_text()
        assert path.is_socket()
        with socket.socket(socket.AF_UNIX) as probe:  # still the other runtime's
            probe.connect(str(path))
            accepted, _ = other.accept()
            accepted.close()


def test_nothing_unhandled_in_the_daemon_log(env: Env) -> None:
    """After all the plugins above came and went (last in this module on purpose)."""
    text = env.daemon.stderr_text()
    assert "never retrieved" not in text
    assert "Traceback" not in text
    assert not env.daemon.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items


def test_a_pod_whose_infra_died_is_still_stopped_for_plugins(env: Env,
                                                               plugins: list[ScriptedPlugin]
                                                               ) -> None:
    """A shared-PID pod's infra dying makes it NOTREADY behind the kubelet's
    back; the StopPodSandbox that follows must still reach plugins, which hold
    the pod until they hear of it."""
    plugin = _plugin(env, plugins, "watcher")
    config = pod_config(linux=namespace_options(pid=api_pb2.POD))
    pod_id = env.daemon.runtime.RunPodSandbox(
        api_pb2.RunPodSandboxRequest(config=config)).pod_sandbox_id
    os.kill(int(info(env.daemon, pod_id)["pid"]), signal.SIGKILL)
    _wait(lambda: env.daemon.runtime.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(
        pod_sandbox_id=pod_id)).status.state == api_pb2.SANDBOX_NOTREADY)
    stop_remove(env.daemon, pod_id)
    _wait(lambda: ("RemovePodSandbox", pod_id, "") in plugin.calls)
    assert ("StopPodSandbox", pod_id, "") in plugin.calls
