"""CNI behaviour through the daemon: a failing plugin, readiness from the conf dir."""

from __future__ import annotations

import contextlib
import json
import subprocess
import tempfile
from pathlib import Path

import grpc
import pytest
from cri_api.v1 import api_pb2

from e2e.fixtures.daemon import mounts_under
from e2e.sandbox.pods import PodNet, pod_config, pod_daemon, run_pod, stop_remove

FAILING_PLUGIN = """#!/bin/sh
cat >/dev/null
if [ "$CNI_COMMAND" = DEL ]; then exit 0; fi
echo '{"cniVersion": "1.0.0", "code": 7, "msg": "failer refuses", "details": "on purpose"}'
exit 1
"""


def network_ready(status: api_pb2.StatusResponse) -> api_pb2.RuntimeCondition:
    return next(c for c in status.status.conditions if c.type == "NetworkReady")


def test_failing_plugin_gives_its_error_and_leaves_nothing() -> None:
    net = PodNet()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as cleanup:
        cleanup.callback(net.cleanup)
        plugin_dir, ipam_dir = Path(tmp) / "bin", Path(tmp) / "ipam"
        plugin_dir.mkdir()
        (plugin_dir / "failer").write_text(FAILING_PLUGIN)
        (plugin_dir / "failer").chmod(0o755)
        conflist = {
            "cniVersion": "1.0.0", "name": net.name,
            "plugins": [
                {"type": "bridge", "bridge": net.bridge, "isGateway": True, "ipMasq": True,
                 "ipam": {"type": "host-local", "ranges": [[{"subnet": net.subnet}]],
                          "dataDir": str(ipam_dir)}},
                {"type": "failer"},
            ],
        }
        with pod_daemon(extra_args=("--cni-plugin-dir", str(plugin_dir),
                                    "--cni-plugin-dir", "/usr/lib/cni"),
                        cni_conflist=conflist) as (daemon, env):
            with pytest.raises(grpc.RpcError) as caught:
                run_pod(daemon, pod_config())
            details = str(caught.value.details())
            assert "failer" in details and "failer refuses" in details and "on purpose" in details
            assert daemon.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items == []
            assert list((daemon.runroot / "pods").iterdir()) == []
            assert mounts_under(daemon.runroot) == []
            assert env.cgroup_dirs() == []
            # bridge's DEL ran: its veth is gone and host-local gave the address back.
            ports = subprocess.run(["ip", "-o", "link", "show", "master", net.bridge],
                                   capture_output=True, text=True).stdout
            assert ports.strip() == ""
            leased = [p.name for p in (ipam_dir / net.name).iterdir()
                      if p.name[0].isdigit()] if (ipam_dir / net.name).exists() else []
            assert leased == []
            assert list((daemon.root / "cni" / "results").glob("*.json")) == []


def test_network_becomes_ready_when_a_config_appears() -> None:
    with pod_daemon(extra_toml="default_network = false\n") as (daemon, net):
        status = daemon.runtime.Status(api_pb2.StatusRequest())
        assert not network_ready(status).status
        assert str(daemon.cni_config_dir) in network_ready(status).message
        with pytest.raises(grpc.RpcError) as caught:
            run_pod(daemon, pod_config())
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION

        conflist = {"cniVersion": "0.4.0", "name": net.name, "plugins": [
            {"type": "bridge", "bridge": net.bridge, "isGateway": True,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": net.subnet}]],
                      "dataDir": str(daemon.workdir / "ipam")}}]}
        (daemon.cni_config_dir / "50-late.conflist").write_text(json.dumps(conflist))
        assert network_ready(daemon.runtime.Status(api_pb2.StatusRequest())).status
        pod = run_pod(daemon, pod_config())
        status_ip = daemon.runtime.PodSandboxStatus(
            api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod)).status.network.ip
        assert status_ip.startswith(f"10.88.{net.third}.")
        stop_remove(daemon, pod)


def test_default_network_is_written_when_the_conf_dir_is_empty() -> None:
    with pod_daemon() as (daemon, net):
        written = json.loads((daemon.cni_config_dir / "10-crid-bridge.conflist").read_text())
        bridge = written["plugins"][0]
        assert written["name"] == net.name
        assert bridge["bridge"] == net.bridge
        assert bridge["ipam"]["ranges"] == [[{"subnet": net.subnet}]]
        assert [p["type"] for p in written["plugins"]] == ["bridge", "portmap"]
