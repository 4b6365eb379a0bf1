"""What a pod tells its CNI plugins: CNI_ARGS and the runtimeConfig capability args.

A plugin receives a capability arg in ``runtimeConfig`` only when its config
declares the capability (``"capabilities": {"portMappings": true}``), as
libcni does. Bandwidth comes from the pod annotations kubelet sets
(``kubernetes.io/ingress-bandwidth: 10M``), in bits per second.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

from crid.errors import InvalidArgument
from crid.jsontypes import Json

INGRESS_ANNOTATION = "kubernetes.io/ingress-bandwidth"
EGRESS_ANNOTATION = "kubernetes.io/egress-bandwidth"
UNLIMITED_BURST = 2**31 - 1  # what kubelet passed: the rate alone limits
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([KMGTPE]i|[kMGTPE]|m)?$")
_DECIMAL = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}


@dataclasses.dataclass(frozen=True)
class PodNetwork:
    """Everything about a pod that its network setup needs."""

    id: str
    name: str
    namespace: str
    uid: str
    netns: str
    port_mappings: Sequence[Mapping[str, Any]] = ()
    annotations: Mapping[str, str] = dataclasses.field(default_factory=dict)
    dns: Mapping[str, Sequence[str]] = dataclasses.field(default_factory=dict)
    ifname: str = "eth0"

    def cni_args(self) -> str:
        return ";".join([
            "IgnoreUnknown=1",
            f"K8S_POD_NAMESPACE={self.namespace}",
            f"K8S_POD_NAME={self.name}",
            f"K8S_POD_INFRA_CONTAINER_ID={self.id}",
            f"K8S_POD_UID={self.uid}",
        ])

    def capability_args(self) -> Json:
        found: Json = {}
        mappings = [dict(m) for m in self.port_mappings if m.get("hostPort")]
        if mappings:
            found["portMappings"] = mappings
        bandwidth = bandwidth_args(self.annotations)
        if bandwidth:
            found["bandwidth"] = bandwidth
        if any(self.dns.values()):
            found["dns"] = {k: list(v) for k, v in self.dns.items() if v}
        return found


def port_mapping(protocol: str, container_port: int, host_port: int, host_ip: str
                 ) -> Json:
    mapping: Json = {"hostPort": host_port, "containerPort": container_port,
                               "protocol": protocol.lower()}
    if host_ip:
        mapping["hostIP"] = host_ip
    return mapping


def quantity_bits(text: str) -> int:
    """A Kubernetes quantity ("10M", "1Gi", "500k") as an integer."""
    match = _QUANTITY.match(text.strip())
    if not match:
        raise InvalidArgument(f"bandwidth {text!r} is not a quantity like 10M or 1Gi")
    number, suffix = float(match.group(1)), match.group(2) or ""
    bits = number / 1000 if suffix == "m" else number * (_BINARY.get(suffix) or _DECIMAL[suffix])
    if bits >= 2**63:  # 400 digits make infinity, which int() refuses
        raise InvalidArgument(f"bandwidth {text!r} is too large")
    return int(bits)


def bandwidth_args(annotations: Mapping[str, str]) -> dict[str, int]:
    found: dict[str, int] = {}
    if INGRESS_ANNOTATION in annotations:
        found["ingressRate"] = quantity_bits(annotations[INGRESS_ANNOTATION])
        found["ingressBurst"] = UNLIMITED_BURST
    if EGRESS_ANNOTATION in annotations:
        found["egressRate"] = quantity_bits(annotations[EGRESS_ANNOTATION])
        found["egressBurst"] = UNLIMITED_BURST
    return found


def runtime_config(plugin: Mapping[str, Any], capability_args: Mapping[str, Any]
                   ) -> Json:
    """The capability args this plugin asked for."""
    wanted = plugin.get("capabilities") or {}
    return {k: v for k, v in capability_args.items() if wanted.get(k)}
