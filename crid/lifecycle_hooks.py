"""The seam where pod and container life calls out to extensions (NRI), and its no-op default.

Pods and containers know nothing of NRI: their contexts hold a
``LifecycleHooks`` that starts as ``NO_HOOKS`` (every hook returns at once),
and the composition root (``crid.wiring``) puts NRI's hooks there once its
plugins' socket is up. The hook points, where they are called and what a
plugin may do at each, are described in ``crid.nri.hooks``.
"""

from __future__ import annotations

import contextlib
from typing import Protocol

from cri_api.v1 import api_pb2

from crid.containers.records import Container
from crid.oci.runtime_spec import Spec
from crid.sandbox.records import Sandbox


class LifecycleHooks(Protocol):
    async def run_pod(self, sandbox: Sandbox, undo: contextlib.AsyncExitStack) -> None: ...

    async def stop_pod(self, sandbox: Sandbox) -> None: ...

    async def update_pod(self, sandbox: Sandbox,
                         request: api_pb2.UpdatePodSandboxResourcesRequest) -> None: ...

    def pod_updated(self, sandbox: Sandbox) -> None: ...

    async def create_container(self, pod: Sandbox, container_id: str,
                               config: api_pb2.ContainerConfig, spec: Spec,
                               undo: contextlib.AsyncExitStack) -> None: ...

    async def start_container(self, container: Container) -> None: ...

    async def update_container(self, request: api_pb2.UpdateContainerResourcesRequest
                               ) -> api_pb2.UpdateContainerResourcesRequest: ...

    def container_updated(self, container_id: str) -> None: ...


class NoHooks:
    """No extension: every hook point passes straight through."""

    async def run_pod(self, sandbox: Sandbox, undo: contextlib.AsyncExitStack) -> None:
        pass

    async def stop_pod(self, sandbox: Sandbox) -> None:
        pass

    async def update_pod(self, sandbox: Sandbox,
                         request: api_pb2.UpdatePodSandboxResourcesRequest) -> None:
        pass

    def pod_updated(self, sandbox: Sandbox) -> None:
        pass

    async def create_container(self, pod: Sandbox, container_id: str,
                               config: api_pb2.ContainerConfig, spec: Spec,
                               undo: contextlib.AsyncExitStack) -> None:
        pass

    async def start_container(self, container: Container) -> None:
        pass

    async def update_container(self, request: api_pb2.UpdateContainerResourcesRequest
                               ) -> api_pb2.UpdateContainerResourcesRequest:
        return request

    def container_updated(self, container_id: str) -> None:
        pass


NO_HOOKS: LifecycleHooks = NoHooks()
