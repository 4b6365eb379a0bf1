"""Version, Status, RuntimeConfig and UpdateRuntimeConfig: what the runtime is,
whether it is ready, and the pod CIDR kubelet tells it (kept in the store's
meta table, shown in verbose Status)."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from collections.abc import Callable
from typing import Any

from cri_api.v1 import api_pb2

import crid
from crid.config import Config
from crid.errors import InvalidArgument
from crid.handler_features import Features
from crid.network.cni.manager import NetworkManager
from crid.store import Store

RUNTIME_NAME = "crid"
RUNTIME_API_VERSION = "v1"
KUBELET_API_VERSION = "0.1.0"  # the CRI's own version field, fixed by the API
POD_CIDR_KEY = "runtime.pod_cidr"


class RuntimeInfo:
    def __init__(self, config: Config, network: NetworkManager, features: Features,
                 store: Store) -> None:
        self._config = config
        self._network = network
        self._features = features
        self._store = store
        # One object: the gRPC layer then serializes it once (server.py).
        self._version = api_pb2.VersionResponse(
            version=KUBELET_API_VERSION,
            runtime_name=RUNTIME_NAME,
            runtime_version=crid.__version__,
            runtime_api_version=RUNTIME_API_VERSION,
        )

    def inline_calls(self) -> dict[str, Callable[[Any], Any]]:
        """Calls the gRPC layer may answer outside the loop (``crid.grpc_server``)."""
        return {"Version": self.version}

    def version(self, request: api_pb2.VersionRequest) -> api_pb2.VersionResponse:
        return self._version

    async def Version(self, request: api_pb2.VersionRequest) -> api_pb2.VersionResponse:
        return self.version(request)

    async def Status(self, request: api_pb2.StatusRequest) -> api_pb2.StatusResponse:
        config = self._config
        runtime_ready = api_pb2.RuntimeCondition(type="RuntimeReady", status=True)
        network_ready = _network_condition(self._network.not_ready_reason())
        handlers = [
            api_pb2.RuntimeHandler(name=name, features=api_pb2.RuntimeHandlerFeatures(
                recursive_read_only_mounts=self._features.of(name).recursive_read_only_mounts,
                user_namespaces=self._features.of(name).user_namespaces))
            # "" is the default handler, as kubelet asks for it by that name.
            for name in ["", *(h.name for h in config.handlers)]
        ]
        info = {}
        if request.verbose:
            info["config"] = json.dumps(dataclasses.asdict(config))
            info["podCIDR"] = await self._store.get_meta(POD_CIDR_KEY) or ""
        return api_pb2.StatusResponse(
            status=api_pb2.RuntimeStatus(conditions=[runtime_ready, network_ready]),
            runtime_handlers=handlers,
            features=api_pb2.RuntimeFeatures(supplemental_groups_policy=True),
            info=info,
        )

    async def RuntimeConfig(
        self, request: api_pb2.RuntimeConfigRequest
    ) -> api_pb2.RuntimeConfigResponse:
        return api_pb2.RuntimeConfigResponse(
            linux=api_pb2.LinuxRuntimeConfiguration(cgroup_driver=api_pb2.CGROUPFS)
        )


    async def UpdateRuntimeConfig(
        self, request: api_pb2.UpdateRuntimeConfigRequest
    ) -> api_pb2.UpdateRuntimeConfigResponse:
        cidr = request.runtime_config.network_config.pod_cidr
        for part in filter(None, (p.strip() for p in cidr.split(","))):
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError as exc:
                raise InvalidArgument(f"pod_cidr {part!r} is not a CIDR: {exc}") from None
        # The CNI network's own config owns the pod subnet; kubelet's CIDR is kept for
        # operators to see (Status verbose) and for a future default network.
        await self._store.set_meta(POD_CIDR_KEY, cidr)
        return api_pb2.UpdateRuntimeConfigResponse()


def _network_condition(not_ready_reason: str | None) -> api_pb2.RuntimeCondition:
    if not_ready_reason is None:
        return api_pb2.RuntimeCondition(type="NetworkReady", status=True)
    return api_pb2.RuntimeCondition(
        type="NetworkReady", status=False, reason="NetworkPluginNotReady",
        message=not_ready_reason,
    )

