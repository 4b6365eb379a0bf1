"""The pod network manager: the node's network, ADD/DEL/CHECK, readiness.

``NetworkManager`` re-reads the conf dir when its listing changes (a cheap
look on every use, on ``Status``, and every two seconds from ``watch``), so
a config dropped in after start makes the network ready without a restart.
On start, when the conf dir has no configuration and the default is enabled,
it writes crid's default bridge network there.

ADD runs the list's plugins in order, each getting the previous one's result
as ``prevResult``; the last result is the pod's. DEL runs them in reverse
with the cached configuration and result, and does not stop at the first
failure (every plugin gets to release what it holds); the first error is
raised after all ran, so the caller can retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from crid.network.cni import config as cni_config
from crid.network.cni.args import PodNetwork, runtime_config
from crid.network.cni.cache import Entry, ResultCache
from crid.network.cni.invoke import PluginRunner, invoke

from crid import logs
from crid.errors import CridError, FailedPrecondition
from crid.jsontypes import Json

log = logs.get("crid.network")
DEFAULT_FILE = "10-crid-bridge.conflist"


@dataclasses.dataclass(frozen=True)
class Attachment:
    """What ADD gave a pod: its addresses (first is the primary) and the raw result."""

    ips: tuple[str, ...]
    result: Json


@dataclasses.dataclass(frozen=True)
class Settings:
    conf_dir: Path
    plugin_dirs: tuple[str, ...]
    cache_dir: Path
    timeout: float = 60.0
    write_default: bool = True
    default_name: str = "crid"
    default_bridge: str = "crid0"
    default_subnet: str = "10.88.0.0/16"


class NetworkManager:
    def __init__(self, settings: Settings, runner: PluginRunner | None = None) -> None:
        self.settings = settings
        self.runner = runner or PluginRunner()
        self.cache = ResultCache(settings.cache_dir)
        self._listing: tuple[tuple[str, int], ...] | None = None
        self._network: cni_config.NetworkConfig | None = None
        self._problems: list[str] = []

    # --- configuration -------------------------------------------------------

    def start(self) -> None:
        """Write the default network when the conf dir has none (and that is wanted)."""
        conf_dir = self.settings.conf_dir
        if self.settings.write_default and not cni_config.candidates(conf_dir):
            conf_dir.mkdir(parents=True, exist_ok=True)
            tree = cni_config.default_network(
                self.settings.default_name, self.settings.default_bridge,
                self.settings.default_subnet)
            target = conf_dir / DEFAULT_FILE
            temp = target.with_suffix(".tmp")
            temp.write_text(json.dumps(tree, indent=2) + "\n")
            os.replace(temp, target)
            log.info("wrote default CNI network", path=str(target),
                     bridge=self.settings.default_bridge, subnet=self.settings.default_subnet)
        self.network()

    def network(self) -> cni_config.NetworkConfig | None:
        """The current network, re-read when the conf dir's listing changed."""
        listing = self._snapshot()
        if listing != self._listing:
            self._listing = listing
            before = self._network
            self._network, self._problems = cni_config.load_first(self.settings.conf_dir)
            for problem in self._problems:
                log.warning("skipping CNI configuration", problem=problem)
            if self._network != before:
                log.info("CNI network", name=getattr(self._network, "name", None),
                         source=getattr(self._network, "source", None))
        return self._network

    @property
    def current(self) -> cni_config.NetworkConfig | None:
        """The network as last read, without looking at the conf dir again."""
        return self._network

    async def watch(self, interval: float = 2.0) -> None:
        """Poll the conf dir until cancelled, so changes are picked up (and
        logged) even when no pod or Status call asks."""
        while True:
            await asyncio.sleep(interval)
            try:
                self.network()
            except OSError as exc:  # a conf dir on a flaky mount must not stop the watch
                log.warning("cannot read the CNI conf dir", error=str(exc))

    def _snapshot(self) -> tuple[tuple[str, int], ...]:
        found = []
        for path in cni_config.candidates(self.settings.conf_dir):
            with contextlib.suppress(OSError):
                found.append((path.name, path.stat().st_mtime_ns))
        return tuple(found)

    def not_ready_reason(self) -> str | None:
        """None when pods can get a network; else why not, for Status."""
        if self.network() is not None:
            return None
        detail = f" ({'; '.join(self._problems)})" if self._problems else ""
        return f"no valid CNI network configuration in {self.settings.conf_dir}{detail}"

    # --- commands ------------------------------------------------------------

    async def add(self, pod: PodNetwork) -> Attachment:
        network = self.network()
        if network is None:
            raise FailedPrecondition(f"pod network is not ready: {self.not_ready_reason()}")
        capability_args = pod.capability_args()
        entry = Entry(network=network.name, config=network.raw, ifname=pod.ifname,
                      cni_args=pod.cni_args(), capability_args=capability_args, result={})
        result: Json | None = None
        ran: list[Mapping[str, Any]] = []
        try:
            for plugin in network.plugins:
                conf = self._plugin_config(network, plugin, capability_args, result)
                ran.append(plugin)
                result = await invoke(self.runner, self.settings.plugin_dirs, "ADD", conf,
                                      self._env(pod, entry), self.settings.timeout) or result
            final = dataclasses.replace(entry, result=result or {})
            # Inside the undo: an attachment whose result can't be kept (a full
            # disk) could never be DEL'd with it, so it is released now.
            self.cache.put(pod.id, final)
        except BaseException:
            # Give what did run a chance to release it (IPs, veths, iptables rules).
            partial = dataclasses.replace(entry, result=result or {})
            with contextlib.suppress(CridError, OSError):
                await self._delete(pod, network, partial, only=ran)
            with contextlib.suppress(OSError):
                self.cache.delete(pod.id)
            raise
        return Attachment(ips=pod_ips(final.result), result=final.result)

    async def check(self, pod: PodNetwork) -> None:
        entry = self.cache.get(pod.id)
        if entry is None:
            raise FailedPrecondition(f"pod {pod.id} has no cached network attachment")
        network = cni_config.parse(entry.config, "cache")
        if not network.has_check:
            return
        for plugin in network.plugins:
            conf = self._plugin_config(network, plugin, entry.capability_args, entry.result)
            await invoke(self.runner, self.settings.plugin_dirs, "CHECK", conf,
                         self._env(pod, entry), self.settings.timeout)

    async def delete(self, pod: PodNetwork) -> None:
        """DEL with what ADD used; without a cache entry, with today's network."""
        entry = self.cache.get(pod.id)
        if entry is None:
            network = self.network()
            if network is None:
                return  # never attached, or nothing left that could detach it
            entry = Entry(network=network.name, config=network.raw, ifname=pod.ifname,
                          cni_args=pod.cni_args(), capability_args=pod.capability_args(),
                          result={})
        await self._delete(pod, cni_config.parse(entry.config, "cache"), entry)
        self.cache.delete(pod.id)

    async def _delete(self, pod: PodNetwork, network: cni_config.NetworkConfig, entry: Entry,
                      only: Sequence[Mapping[str, Any]] | None = None) -> None:
        plugins = list(only if only is not None else network.plugins)
        prev = entry.result if network.passes_prev_result_to_del and entry.result else None
        first_error: CridError | None = None
        for plugin in reversed(plugins):
            conf = self._plugin_config(network, plugin, entry.capability_args, prev)
            try:
                await invoke(self.runner, self.settings.plugin_dirs, "DEL", conf,
                             self._env(pod, entry), self.settings.timeout)
            except CridError as exc:
                log.warning("CNI DEL failed", pod=pod.id, error=exc.message)
                first_error = first_error or exc
        if first_error is not None:
            raise first_error

    @staticmethod
    def _plugin_config(network: cni_config.NetworkConfig, plugin: Mapping[str, Any],
                       capability_args: Json, prev_result: Json | None) -> Json:
        conf: Json = {**plugin, "name": network.name, "cniVersion": network.cni_version}
        wanted = runtime_config(plugin, capability_args)
        if wanted:
            conf["runtimeConfig"] = {**conf.get("runtimeConfig", {}), **wanted}
        if prev_result:
            conf["prevResult"] = prev_result
        return conf

    @staticmethod
    def _env(pod: PodNetwork, entry: Entry) -> dict[str, str]:
        return {
            "CNI_CONTAINERID": pod.id,
            "CNI_NETNS": pod.netns,
            "CNI_IFNAME": entry.ifname,
            "CNI_ARGS": entry.cni_args,
        }


def pod_ips(result: Json) -> tuple[str, ...]:
    """The pod's addresses from a 0.3+ result, IPv4 first (as kubelet picks the primary)."""
    # A plugin's result is outside input: what is not shaped as the spec says
    # is skipped, as an address that does not parse is.
    interfaces = [i if isinstance(i, dict) else {} for i in _list(result.get("interfaces"))]
    found: list[str] = []
    for entry in _list(result.get("ips")):
        if not isinstance(entry, dict):
            continue
        index = entry.get("interface")
        # Only addresses on the pod's side (the ones with a sandbox) are the pod's.
        if isinstance(index, int) and 0 <= index < len(interfaces) \
                and not interfaces[index].get("sandbox"):
            continue
        address = str(entry.get("address", "")).split("/")[0]
        with contextlib.suppress(ValueError):
            found.append(str(ipaddress.ip_address(address)))
    return tuple(sorted(found, key=lambda ip: ipaddress.ip_address(ip).version))


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
