"""200 run/stop/remove cycles leave nothing behind.

Counted before and after: pin files and mounts under the daemon's dirs, the
daemon's child processes (infra holders, plugins), veths on the pod bridge,
iptables rules naming the pod network, cgroup dirs under the test's parent,
CNI cache and IPAM lease files, and store rows. Every count is scoped to this
test's own daemon, bridge, subnet and cgroup parent, so other tests running
on the machine do not disturb it.
"""

from __future__ import annotations

import sqlite3
import subprocess
import time
from pathlib import Path

from cri_api.v1 import api_pb2

from e2e.fixtures.daemon import CridDaemon, mounts_under
from e2e.sandbox.pods import PodNet, namespace_options, pod_config, pod_daemon, run_pod, stop_remove

CYCLES = 200


def counts(daemon: CridDaemon, net: PodNet) -> dict[str, int]:
    rules = "\n".join(
        subprocess.run(["iptables-save", "-t", table], capture_output=True, text=True,
                       check=True).stdout for table in ("nat", "filter"))
    prefix = f"10.88.{net.third}."
    with sqlite3.connect(f"file:{daemon.root / 'crid.db'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT count(*) FROM sandboxes").fetchone()[0]
    leases = net.ipam_dir  # host-local's, per network: the default conf names no dataDir
    return {
        "pod state files": sum(1 for _ in (daemon.runroot / "pods").rglob("*")),
        "mounts": len(mounts_under(daemon.workdir)),
        "veths on the bridge": len(subprocess.run(
            ["ip", "-o", "link", "show", "master", net.bridge],
            capture_output=True, text=True).stdout.splitlines()),
        "iptables rules": sum(1 for line in rules.splitlines()
                              if net.name in line or prefix in line),
        "cgroup dirs": len(net.cgroup_dirs()),
        "cni cache files": sum(1 for _ in (daemon.root / "cni" / "results").glob("*")),
        "ipam leases": sum(1 for p in leases.iterdir() if p.name.startswith(prefix)),
        "rows": int(rows),
        "listed pods": len(daemon.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items),
        "daemon child processes": len(children(daemon.process.pid if daemon.process else 0)),
    }


def children(pid: int) -> list[int]:
    """Processes (zombies included) whose parent is ``pid``: infra holders, plugins."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def cycle(daemon: CridDaemon, index: int) -> None:
    config = pod_config(linux=namespace_options(
        pid=api_pb2.POD if index % 4 == 0 else api_pb2.CONTAINER))
    config.linux.sysctls["net.ipv4.ping_group_range"] = "0 0"
    if index % 10 == 0:
        config.port_mappings.append(api_pb2.PortMapping(
            container_port=80, host_port=30000 + index, host_ip="127.0.0.1"))
    stop_remove(daemon, run_pod(daemon, config))


def test_run_stop_remove_cycles_leak_nothing() -> None:
    with pod_daemon() as (daemon, net):
        cycle(daemon, 0)  # first use creates shared things (bridge, portmap chains)
        before = counts(daemon, net)
        started = time.monotonic()
        for index in range(1, CYCLES + 1):
            cycle(daemon, index)
        elapsed = time.monotonic() - started
        after = counts(daemon, net)
        assert after == before, f"leaked after {CYCLES} cycles: {before} -> {after}"
        assert before["rows"] == 0 and before["mounts"] == 0 and before["cgroup dirs"] == 0
        print(f"{CYCLES} cycles in {elapsed:.1f}s")
        assert Path(f"/sys/class/net/{net.bridge}").exists()
