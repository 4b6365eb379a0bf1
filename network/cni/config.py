"""Network configurations from the CNI conf dir.

A node's network is the lexically first ``*.conflist``/``*.conf``/``*.json``
in the conf dir that parses (as libcni and cri-o pick it). A single-plugin
``.conf`` is read as a list of one. Spec 1.0 and the 0.3/0.4 lists real
clusters still have are both accepted; the version decides which commands
exist (CHECK and DEL's prevResult came with 0.4.0).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from crid.jsontypes import Json

SUFFIXES = (".conflist", ".conf", ".json")
SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")


class ConfigProblem(ValueError):
    """A file in the conf dir that is not a usable network configuration."""


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    name: str
    cni_version: str
    plugins: Sequence[Mapping[str, Any]]
    source: str  # the file it came from
    raw: str  # the list as JSON, cached with each result so DEL uses what ADD used

    @property
    def has_check(self) -> bool:
        return _version_at_least(self.cni_version, (0, 4, 0))

    @property
    def passes_prev_result_to_del(self) -> bool:
        return _version_at_least(self.cni_version, (0, 4, 0))


def _version_at_least(version: str, wanted: tuple[int, int, int]) -> bool:
    try:
        parts = tuple(int(p) for p in version.split("."))
    except ValueError:
        return False
    return parts >= wanted


def parse(text: str, source: str = "<config>") -> NetworkConfig:
    try:
        tree = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigProblem(f"{source}: not valid JSON: {exc}") from None
    except RecursionError:
        raise ConfigProblem(f"{source}: not valid JSON: nested too deeply") from None
    if not isinstance(tree, dict):
        raise ConfigProblem(f"{source}: a network configuration is a JSON object")
    if "plugins" not in tree:  # a single-plugin .conf
        single = {k: v for k, v in tree.items() if k not in ("cniVersion", "name")}
        tree = {"cniVersion": tree.get("cniVersion", ""), "name": tree.get("name", ""),
                "plugins": [single]}
    name, version, plugins = tree.get("name"), tree.get("cniVersion", ""), tree["plugins"]
    if not isinstance(name, str) or not name:
        raise ConfigProblem(f"{source}: the network has no name")
    if version not in SUPPORTED_VERSIONS:
        raise ConfigProblem(
            f"{source}: cniVersion {version!r} is not supported "
            f"(supported: {', '.join(SUPPORTED_VERSIONS)})"
        )
    if not isinstance(plugins, list) or not plugins:
        raise ConfigProblem(f"{source}: 'plugins' must be a non-empty list")
    for plugin in plugins:
        if not isinstance(plugin, dict) or not isinstance(plugin.get("type"), str):
            raise ConfigProblem(f"{source}: every plugin needs a 'type'")
        # crid reads these two and merges into runtimeConfig: objects or nothing.
        for key in ("capabilities", "runtimeConfig"):
            if not isinstance(plugin.get(key, {}), dict):
                raise ConfigProblem(f"{source}: plugin {plugin['type']!r}: {key!r} must be "
                                    "an object")
    return NetworkConfig(name=name, cni_version=version, plugins=plugins, source=source,
                         raw=json.dumps(tree))


def candidates(conf_dir: Path) -> list[Path]:
    try:
        return sorted(p for p in conf_dir.iterdir() if p.suffix in SUFFIXES and p.is_file())
    except OSError:
        return []


def load_first(conf_dir: Path) -> tuple[NetworkConfig | None, list[str]]:
    """The first usable configuration, and the problems of files skipped before it."""
    problems: list[str] = []
    for path in candidates(conf_dir):
        try:
            return parse(path.read_text(), str(path)), problems
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{path}: cannot read: {exc}")
        except ConfigProblem as exc:
            problems.append(str(exc))
    return None, problems


def default_network(name: str, bridge: str, subnet: str) -> Json:
    """crid's default: a bridge with host-local addresses, masquerade and host ports.

    No ``dataDir``: the file goes to the node's shared conf dir, so any crid
    (any ``--root``) that finds it there uses this network, bridge and
    subnet, and must then share its address reservations too, or two pods
    get one address. host-local keeps them per network name in its own
    default, ``/var/lib/cni/networks/<name>``, as with cri-o's, containerd's
    and podman's default networks; a conf naming one crid's root would tie
    every other crid to that root (``crid check`` reports such a conf)."""
    return {
        "cniVersion": "1.0.0",
        "name": name,
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "ranges": [[{"subnet": subnet}]],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
