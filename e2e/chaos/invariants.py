"""The checks after each kill: the workers' ledgers against the daemon, the
daemon against the node.

``check`` settles what kills left pending, then asks: is every fact a call
returned still true, is every listed pod and container one some call made,
and does the node hold anything (a bundle or writable layer dir, a mount, a
pod state dir, a cgroup, a conmon, a runtime state dir, an exit file, an IPAM
lease, a CNI result) for an id the daemon does not list? Our own look,
scoped to this test's daemon, bridge and cgroup parent, written before
``crid check`` (issue 20 item 1) existed; ``crid check`` is asked as well.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from cri_api.v1 import api_pb2

from e2e.chaos import killer
from e2e.chaos.ledger import Listing
from e2e.chaos.workers import Worker
from e2e.fixtures.daemon import CridDaemon, mounts_under
from e2e.sandbox.pods import PodNet

ID = re.compile(r"[0-9a-f]{64}")
CHECK_ATTEMPTS = 3
CHECK_RETRY_DELAY = 0.5


def listing(daemon: CridDaemon) -> Listing:
    pods = daemon.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest(), timeout=30).items
    containers = daemon.runtime.ListContainers(api_pb2.ListContainersRequest(),
                                               timeout=30).containers
    return {p.id: p for p in pods}, {c.id: c for c in containers}


def check(daemon: CridDaemon, net: PodNet, workers: Sequence[Worker],
          conmon_killed: set[str]) -> list[str]:
    """Every problem found, with the workers parked."""
    found = listing(daemon)
    exits = {}
    for cid, c in found[1].items():
        if c.state == api_pb2.CONTAINER_EXITED:
            status = daemon.runtime.ContainerStatus(
                api_pb2.ContainerStatusRequest(container_id=cid), timeout=30).status
            exits[cid] = (status.exit_code, status.finished_at)
    problems: list[str] = []
    claimed_pods: set[str] = set()
    claimed_containers: set[str] = set()
    for worker in workers:
        worker.ledger.settle(found)
        problems += worker.ledger.check(found, exits)
        pods, containers = worker.ledger.claims()
        claimed_pods |= pods
        claimed_containers |= containers
    problems += [f"pod {p} is listed, but no call made it" for p in set(found[0]) - claimed_pods]
    problems += [f"container {c} is listed, but no call made it"
                 for c in set(found[1]) - claimed_containers]
    # A pod keeps its lease while ready, and after a stop whose CNI DEL failed
    # (to be tried again by the next stop or the remove).
    attached = {p.id for p in found[0].values()
                if p.state == api_pb2.SANDBOX_READY or _teardown_pending(daemon, p.id)}
    return (problems + leaks(daemon, net, set(found[0]), set(found[1]), attached)
            + crid_check(daemon, conmon_killed))


def crid_check(daemon: CridDaemon, conmon_killed: set[str]) -> list[str]:
    """What ``crid check`` finds (issue 20 item 1), beside the running daemon.

    Containers whose conmon the killer killed are expected to be reported as
    such (monitor-gone). A container may exit between the daemon's exit watch
    and the check's look (exit-not-recorded for a moment): a finding must
    still be there a moment later."""
    findings: list[dict[str, str]] = []
    for attempt in range(CHECK_ATTEMPTS):
        if attempt:
            time.sleep(CHECK_RETRY_DELAY)
        done = subprocess.run([str(daemon.crid), "check", *daemon.command()[1:], "--json"],
                              capture_output=True, text=True, timeout=120, check=False)
        if not done.stdout.strip():
            return [f"crid check failed ({done.returncode}): {done.stderr.strip()}"]
        findings = [f for f in json.loads(done.stdout)["findings"]
                    if not (f["kind"] == "monitor-gone" and f["subject"] in conmon_killed)]
        if not findings:
            return []
    return [f"crid check: {f['kind']} {f['subject']}: {f['detail']}" for f in findings]


def _teardown_pending(daemon: CridDaemon, pod_id: str) -> bool:
    info = daemon.runtime.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(
        pod_sandbox_id=pod_id, verbose=True), timeout=30).info.get("info", "{}")
    return bool(json.loads(info).get("networkTeardownPending"))


def leaks(daemon: CridDaemon, net: PodNet, pods: set[str], containers: set[str],
          attached: set[str]) -> list[str]:
    """What the node holds for ids the daemon does not list."""
    known = pods | containers
    found: list[str] = []

    def unlisted(kind: str, names: list[str], ids: set[str]) -> None:
        found.extend(f"{kind} {n} of " + ("a pod that is not ready" if m.group() in pods
                                          else "an unlisted id")
                     for n in names if (m := ID.search(n)) is not None and m.group() not in ids)

    unlisted("bundle", _names(daemon.runroot / "containers"), containers)
    unlisted("writable layer", _names(daemon.root / "containers"), containers)
    unlisted("exit file", _names(daemon.runroot / "exits"), containers)
    unlisted("pod state dir", _names(daemon.runroot / "pods"), pods)
    for runtime_root in _dirs(daemon.runroot / "runtimes"):
        unlisted("runtime state", _names(runtime_root), containers)
    unlisted("mount", mounts_under(daemon.workdir), known)
    found.extend(f"mount {m} names no id" for m in mounts_under(daemon.workdir)
                 if not ID.search(m))
    unlisted("cgroup", [str(p) for p in net.cgroup_dirs()], known)
    unlisted("conmon", [f"{pid} of {cid}" for pid, cid in killer.conmons(daemon.runroot).items()],
              containers)
    unlisted("CNI result", _names(daemon.root / "cni" / "results"), pods)
    leases = daemon.root / "cni" / "networks" / net.name
    unlisted("IPAM lease", [f"{p.name} ({_first_line(p)})" for p in _dirs(leases, files=True)
                            if p.name.startswith("10.")], attached)
    return found


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


def _dirs(directory: Path, *, files: bool = False) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if files or p.is_dir())


def _first_line(path: Path) -> str:
    try:
        return path.read_text().splitlines()[0]
    except (OSError, IndexError):
        return ""
