"""The pod network: CNI results, address reservations and conf files without a pod.

crid keeps what ADD returned per pod in ``<root>/cni/results/<id>.json``;
one without a pod row is an attachment no one will DEL, so its veth,
iptables rules (bridge masquerade, portmap) and address stay. The repair is
the daemon's own DEL (``NetworkManager.delete`` with the cached config),
which releases all of them; a ``<id>.tmp`` (a write cut off by a crash) of
a pod with no row is only removed. An address reservation under
``<root>/cni/networks`` (host-local's files, ``<ip>`` holding the pod id)
whose pod is gone is released by removing the file, as host-local's DEL does.

Cross-root references: a default network conf crid wrote into the shared
conf dir that names some crid root's directory (older crids put their
``<root>/cni/networks`` there) ties every daemon reading that conf to
that root; reported, not repaired (pods attached with it release through it).
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable
from pathlib import Path

from crid.check.findings import Finding
from crid.check.view import View
from crid.network.cni.args import PodNetwork, port_mapping
from crid.network.cni.manager import DEFAULT_FILE, NetworkManager, Settings

CROSS_ROOT = "cni-conf-cross-root"


def find(view: View, settings: Settings) -> list[Finding]:
    found: list[Finding] = []
    results = settings.cache_dir
    for path in sorted(results.glob("*.json")) if results.is_dir() else []:
        pod_id = path.stem
        if pod_id not in view.pods:
            found.append(Finding(
                "cni-result-without-pod", str(path),
                "a network attachment of a pod with no row (veth, iptables rules, address)",
                deleter(view, settings, pod_id), "ran CNI DEL with the cached config"))
    for path in sorted(results.glob("*.tmp")) if results.is_dir() else []:
        if path.stem not in view.pods:
            found.append(Finding(
                "cni-result-temp-without-pod", str(path),
                "a CNI result a crash cut off, of a pod with no row",
                functools.partial(path.unlink, missing_ok=True), "removed it"))
    found += _reservations(view)
    found += _cross_root(view, settings.conf_dir)
    return found


def _reservations(view: View) -> list[Finding]:
    found: list[Finding] = []
    networks = view.root / "cni" / "networks"
    for network in sorted(networks.iterdir()) if networks.is_dir() else []:
        for path in sorted(network.iterdir()) if network.is_dir() else []:
            if path.name.startswith(("last_reserved_ip", "lock")):
                continue
            try:
                owner = path.read_text().splitlines()[0].strip()
            except (OSError, IndexError):
                owner = ""
            if owner not in view.pods:
                found.append(Finding(
                    "address-without-pod", str(path),
                    f"{network.name} address {path.name} reserved by {owner or 'nobody'}",
                    functools.partial(path.unlink, missing_ok=True),
                    "released the address (removed host-local's reservation)"))
    return found


def _cross_root(view: View, conf_dir: Path) -> list[Finding]:
    path = conf_dir / DEFAULT_FILE
    try:
        tree = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    found: list[Finding] = []
    plugins = tree.get("plugins", []) if isinstance(tree, dict) else []
    for plugin in plugins if isinstance(plugins, list) else []:
        ipam = plugin.get("ipam") if isinstance(plugin, dict) else None
        data_dir = ipam.get("dataDir") if isinstance(ipam, dict) else None
        if not isinstance(data_dir, str):
            continue
        whose = "this root's" if Path(data_dir).is_relative_to(view.root) else "another root's"
        found.append(Finding(
            CROSS_ROOT, str(path),
            f"the default network crid wrote to the shared conf dir names {whose} "
            f"dir {data_dir}: every crid using this conf shares it; remove the file "
            "(with no pods on it) and crid writes one without a root in it"))
    return found


def deleter(view: View, settings: Settings, pod_id: str) -> Callable[[], None]:
    def repair() -> None:
        net = view.runroot / "pods" / pod_id / "net"
        # Used only without a cached result (its own args win): portmap's DEL
        # skips a pod with no host port, and releases by the pod's id, so any
        # one mapping makes it look.
        pod = PodNetwork(id=pod_id, name="", namespace="", uid="",
                         netns=str(net) if net.exists() else "",
                         port_mappings=[port_mapping("tcp", 1, 1, "")])
        asyncio.run(NetworkManager(settings).delete(pod))
    return repair
