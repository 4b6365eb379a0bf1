"""iptables rules CNI made for a pod that has no row (nor a cached result).

The bridge plugin's masquerade chain and portmap's DNAT chains carry a
comment ``name: "<network>" id: "<pod id>"``; rules with this crid's
network name (its conf dir's network, and any a cached result names) and an
id no pod row has are a pod's that no DEL will ever release. A pod with a
cached result is reported as ``cni-result-without-pod`` instead (its DEL
releases these rules too). The repair is the daemon's DEL with today's
network, which releases by id (``NetworkManager.delete``).

The default network is shared by every crid whose conf dir is the node's,
so an id is claimed only when this crid still holds a trace of that pod
(its state dir under the runroot, or its cgroup under the cgroup parent):
a DEL of another daemon's pod would cut its network.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable

from crid.check.findings import Finding
from crid.check.view import View
from crid.network.cni import config as cni_config
from crid.network.cni.manager import Settings

SAVE_TIMEOUT = 30.0
_COMMENT = re.compile(r'name: \\"([^"\\]+)\\" id: \\"([0-9a-f]{64})\\"')


def find(view: View, settings: Settings, delete: Callable[[str], Callable[[], None]],
         ours: Callable[[str], bool], dumps: Iterable[str] | None = None) -> list[Finding]:
    """``delete(pod_id)`` is the repair (DEL); ``ours(pod_id)``: does this crid hold a
    trace of the pod; ``dumps`` the rules (iptables-save's when None)."""
    cached = {p.stem for p in settings.cache_dir.glob("*.json")} \
        if settings.cache_dir.is_dir() else set()
    networks = _our_networks(settings, cached)
    if not networks:
        return []  # no network of ours: none of its rules to look for
    rules: dict[str, list[str]] = {}
    for dump in _dumps() if dumps is None else dumps:
        for line in dump.splitlines():
            for network, pod_id in _COMMENT.findall(line):
                if network in networks and pod_id not in view.pods and pod_id not in cached:
                    rules.setdefault(pod_id, []).append(network)
    rules = {pod_id: found for pod_id, found in rules.items() if ours(pod_id)}
    return [Finding("iptables-without-pod", pod_id,
                    f"{len(found)} rule(s) of network {found[0]} name a pod with no row",
                    delete(pod_id), "ran CNI DEL with today's network")
            for pod_id, found in sorted(rules.items())]


def _our_networks(settings: Settings, cached: set[str]) -> set[str]:
    names = set()
    network, _ = cni_config.load_first(settings.conf_dir)
    if network is not None:
        names.add(network.name)
    for pod_id in cached:
        try:
            names.add(json.loads((settings.cache_dir / f"{pod_id}.json").read_text())["network"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return names


def _dumps() -> list[str]:
    found = []
    for tool in ("iptables-save", "ip6tables-save"):
        path = shutil.which(tool)
        if path is None:
            continue
        for table in ("nat", "filter"):
            done = subprocess.run([path, "-t", table], capture_output=True, text=True,
                                  timeout=SAVE_TIMEOUT, check=False)
            if done.returncode == 0:
                found.append(done.stdout)
    return found
