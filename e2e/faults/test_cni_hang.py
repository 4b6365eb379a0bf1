"""A CNI plugin that hangs: ADD times out, the pod fails cleanly, a retry works.

The plugin is a real executable chained after bridge + host-local: while its
marker exists, ADD and DEL never finish (a shell that starts a ``sleep`` and
waits: a child of its own, as a plugin that runs tools has). crid gives up
after ``crid.network.cni_timeout``, runs DEL (which hangs too, and times out
in its turn, while bridge and host-local still release what they made) and
fails RunPodSandbox with DEADLINE_EXCEEDED. Left behind: nothing (no pod dir,
no netns mount, no veth, no address reserved, no cache entry, no plugin
process). With the marker gone, the same pod runs.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import grpc
import pytest
from cri_api.v1 import api_pb2

from e2e.fixtures.daemon import mounts_under
from e2e.sandbox.pods import pod_config, run_pod, stop_remove
from e2e.sandbox.test_teardown import daemon_with, host_ports

TIMEOUT = 2  # crid.network.cni_timeout for this daemon, seconds

# Hangs while the marker exists; else passes ADD's prevResult through.
HANGING = """#!/bin/sh
echo "$CNI_COMMAND" >> {calls}
if [ -e {marker} ]; then
    sleep {seconds} &
    wait
fi
exec {python} -c 'import json, os, sys
conf = json.load(sys.stdin)
if os.environ["CNI_COMMAND"] == "ADD":
    print(json.dumps(conf["prevResult"]))'
"""


def processes_running(marker: str) -> list[int]:
    """Pids whose command line holds ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_a_hanging_plugin_times_out_leaves_nothing_and_a_retry_works() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        plugin_dir = Path(tmp)
        calls, marker = plugin_dir / "calls", plugin_dir / "hang"
        seconds = str(100000 + int(uuid.uuid4().hex[:4], 16))  # names this test's sleeps
        plugin = plugin_dir / "hangs"
        plugin.write_text(HANGING.format(calls=calls, marker=marker, seconds=seconds,
                                         python=sys.executable))
        plugin.chmod(0o755)
        marker.touch()
        with daemon_with([{"type": "hangs"}], plugin_dir,
                         extra_toml=f"cni_timeout = {TIMEOUT}\n") as (daemon, net):
            ipam = Path(f"/tmp/{net.name}-ipam") / net.name
            config = pod_config()
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as caught:
                run_pod(daemon, config)
            took = time.monotonic() - started
            assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert f"CNI plugin hangs did not finish ADD within {TIMEOUT}s" in \
                (caught.value.details() or "")
            # ADD's deadline, then DEL's own (which hangs too): no more.
            assert TIMEOUT * 2 <= took < TIMEOUT * 2 + 8, took
            assert calls.read_text().split() == ["ADD", "DEL"]

            assert list((daemon.runroot / "pods").iterdir()) == []
            assert mounts_under(daemon.runroot) == []  # no netns (nor shm) pinned
            assert host_ports(net.bridge) == []  # bridge's DEL removed the veth
            reserved = [p.name for p in ipam.iterdir()
                        if p.name[0].isdigit()] if ipam.exists() else []
            assert reserved == []  # host-local's DEL released the address
            assert list((daemon.root / "cni" / "results").glob("*")) == []
            assert processes_running(seconds) == [], "the plugin's processes were left"
            assert not daemon.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items

            marker.unlink()
            pod_id = run_pod(daemon, config)
            status = daemon.runtime.PodSandboxStatus(
                api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod_id)).status
            assert status.network.ip.startswith(f"10.88.{net.third}.")
            assert len(host_ports(net.bridge)) == 1
            stop_remove(daemon, pod_id)
            assert host_ports(net.bridge) == []
            assert os.listdir(daemon.root / "cni" / "results") == []
