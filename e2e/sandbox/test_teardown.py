"""Teardown when things go wrong: a CNI DEL that fails, leftovers of a crash,
and capability args reaching a real plugin (bandwidth)."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cri_api.v1 import api_pb2
from crid.network import namespaces

from e2e.fixtures.daemon import CridDaemon
from e2e.sandbox.pods import PodNet, info, pod_config, pod_daemon, run_pod
from e2e.sandbox.test_leaks import counts, cycle

# A chained plugin that passes ADD through and fails DEL while its marker exists.
FLAKY_DEL = f"""#!{sys.executable}
import json, os, sys
conf = json.load(sys.stdin)
command = os.environ["CNI_COMMAND"]
if command == "ADD":
    print(json.dumps(conf["prevResult"]))
elif command == "DEL" and os.path.exists(conf["marker"]):
    print(json.dumps({{"cniVersion": "1.0.0", "code": 999, "msg": "DEL refused by test"}}))
    sys.exit(1)
"""


def host_ports(bridge: str) -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show", "master", bridge],
                         capture_output=True, text=True).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]


@contextlib.contextmanager
def daemon_with(plugins: list[dict[str, Any]], plugin_dir: Path | None = None,
                extra_toml: str = "") -> Iterator[tuple[CridDaemon, PodNet]]:
    net = PodNet()
    conflist = {"cniVersion": "1.0.0", "name": net.name, "plugins": [
        {"type": "bridge", "bridge": net.bridge, "isGateway": True,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": net.subnet}]],
                  "dataDir": f"/tmp/{net.name}-ipam"}},
        *plugins]}
    args = ("--cni-plugin-dir", str(plugin_dir), "--cni-plugin-dir", "/usr/lib/cni") \
        if plugin_dir else ()
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(net.cleanup)
        cleanup.callback(subprocess.run, ["rm", "-rf", f"/tmp/{net.name}-ipam"], check=False)
        with pod_daemon(extra_toml, extra_args=args, cni_conflist=conflist) \
                as (daemon, _unused):
            yield daemon, net


def test_failed_del_keeps_stop_working_and_is_retried_on_remove() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        plugin_dir = Path(tmp)
        (plugin_dir / "flakydel").write_text(FLAKY_DEL)
        (plugin_dir / "flakydel").chmod(0o755)
        marker = plugin_dir / "refuse-del"
        with daemon_with([{"type": "flakydel", "marker": str(marker)}], plugin_dir) \
                as (daemon, net):
            pod = run_pod(daemon, pod_config())
            assert len(host_ports(net.bridge)) == 1
            marker.touch()
            daemon.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod))
            stopped = info(daemon, pod)
            assert stopped["status"].state == api_pb2.SANDBOX_NOTREADY
            assert stopped["networkTeardownPending"] is True
            assert "DEL refused by test" in daemon.stderr_text()
            marker.unlink()
            daemon.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod))
            assert host_ports(net.bridge) == []
            assert not namespaces.is_pinned(stopped["netns"])
            assert list((daemon.root / "cni" / "results").glob("*.json")) == []


def test_bandwidth_annotations_reach_the_bandwidth_plugin() -> None:
    with daemon_with([{"type": "bandwidth", "capabilities": {"bandwidth": True}}]) \
            as (daemon, net):
        pod = run_pod(daemon, pod_config(
            annotations={"kubernetes.io/ingress-bandwidth": "1M"}))
        (port,) = host_ports(net.bridge)
        qdiscs = subprocess.run(["tc", "qdisc", "show", "dev", port], capture_output=True,
                                text=True, check=True).stdout
        assert "tbf" in qdiscs and "rate 1Mbit" in qdiscs
        daemon.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod))
        daemon.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod))
        assert host_ports(net.bridge) == []


def test_leftovers_of_an_unfinished_pod_are_removed_at_start() -> None:
    with pod_daemon() as (daemon, _net):
        daemon.stop()
        leftover = daemon.runroot / "pods" / ("e" * 64)
        pinned = namespaces.pin(leftover, ("net", "uts"))
        (leftover / "resolv.conf").write_text("nameserver 10.0.0.1\n")
        try:
            daemon.start()
            assert not leftover.exists()
            assert not any(namespaces.is_pinned(p) for p in pinned.paths.values())
        finally:
            namespaces.unpin(pinned)


def test_a_pod_cut_off_before_its_row_leaves_nothing_after_a_restart() -> None:
    # crid killed after RunPodSandbox attached the pod, before the row was
    # written: played by deleting the row of a ready pod while crid is down.
    # Found by e2e/chaos: the lease, CNI result and cgroup stayed.
    with pod_daemon() as (daemon, net):
        cycle(daemon, 0)  # the bridge and portmap chains: made once, kept
        before = counts(daemon, net)
        config = pod_config()
        config.port_mappings.append(api_pb2.PortMapping(
            container_port=80, host_port=30999, host_ip="127.0.0.1"))
        pod = run_pod(daemon, config)
        daemon.kill()
        with sqlite3.connect(daemon.root / "crid.db") as db:
            assert db.execute("DELETE FROM sandboxes WHERE id = ?", (pod,)).rowcount == 1
        daemon.start()
        assert counts(daemon, net) == before
