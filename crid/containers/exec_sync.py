"""ExecSync, ReopenContainerLog and UpdateContainerResources: calls on a running container."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from cri_api.v1 import api_pb2

from crid.containers import monitor as monitors
from crid.containers.context import Containers
from crid.containers.records import RUNNING, Container
from crid.errors import DeadlineExceeded, FailedPrecondition, InvalidArgument
from crid.oci.runtime_spec import Process, Spec
from crid.oci.spec.host import Host
from crid.oci.spec.resources import linux_resources

REOPEN_POLL_SECONDS = 0.01
REOPEN_POLLS = 500


def require_running(ctx: Containers, container_id: str, call: str) -> Container:
    container = ctx.require(container_id)
    if container.state != RUNNING:
        raise FailedPrecondition(
            f"{call}: container {container.id} is {container.state}, not running")
    return container


async def exec_sync(ctx: Containers, request: api_pb2.ExecSyncRequest
                    ) -> api_pb2.ExecSyncResponse:
    if not request.cmd:
        raise InvalidArgument("ExecSync: cmd is required")
    container = require_running(ctx, request.container_id, "ExecSync")
    process = exec_process(Path(container.bundle), list(request.cmd))
    result = await ctx.monitor(container.handler).exec_sync(
        container.id, process, Path(container.bundle), request.timeout or None)
    return api_pb2.ExecSyncResponse(stdout=result.stdout, stderr=result.stderr,
                                    exit_code=result.exit_code)


def exec_process(bundle: Path, cmd: list[str]) -> Process:
    """The container's own process settings (user, env, cwd, caps) with another command."""
    spec: Spec = json.loads((bundle / "config.json").read_text())
    process: Process = spec.get("process", {}).copy()
    process["args"] = cmd
    process["terminal"] = False
    process.pop("consoleSize", None)
    return process


async def reopen_log(ctx: Containers, request: api_pb2.ReopenContainerLogRequest
                     ) -> api_pb2.ReopenContainerLogResponse:
    container = require_running(ctx, request.container_id, "ReopenContainerLog")
    monitors.reopen_log(Path(container.bundle))
    # kubelet (and critest) rename the log, then expect the new file to be
    # there when this call returns; conmon reopens it asynchronously.
    log_path = Path(container.log_path)
    for _ in range(REOPEN_POLLS):
        if log_path.exists():
            return api_pb2.ReopenContainerLogResponse()
        await asyncio.sleep(REOPEN_POLL_SECONDS)
    raise DeadlineExceeded(
        f"ReopenContainerLog: the monitor of container {container.id} did not reopen "
        f"{log_path} within {REOPEN_POLLS * REOPEN_POLL_SECONDS:.0f}s")


async def update_resources(ctx: Containers, request: api_pb2.UpdateContainerResourcesRequest
                           ) -> api_pb2.UpdateContainerResourcesResponse:
    container = ctx.require(request.container_id)
    if container.state not in (RUNNING, "created"):
        raise FailedPrecondition(
            f"UpdateContainerResources: container {container.id} is {container.state}")
    resources = request.linux
    async with ctx.lock(container.id):
        await ctx.monitor(container.handler).update(
            container.id, linux_resources(resources, Host()), Path(container.bundle))
        ctx.records.update(container.id, resources_bytes=resources.SerializeToString())
    return api_pb2.UpdateContainerResourcesResponse()
