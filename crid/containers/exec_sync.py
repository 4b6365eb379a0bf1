"""ExecSync: a command run to completion in a running container, its output returned.

The monitor runs it through the handler's runtime and bounds its output and time.
"""

from __future__ import annotations

from pathlib import Path

from cri_api.v1 import api_pb2

from crid.containers.context import Containers
from crid.containers.exec_process import exec_process
from crid.containers.running import require_running
from crid.errors import InvalidArgument


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
