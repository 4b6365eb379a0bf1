"""ExecSync: a command run to completion in a running container, its output returned.

For the ``crid`` handler the daemon's exec fork server runs it
(``crid.containers.exec_server``); otherwise, or when that server cannot
start, the monitor runs the handler's ``exec`` command. Both bound its output
and time the same way.
"""

from __future__ import annotations

from pathlib import Path

from cri_api.v1 import api_pb2

from crid.containers.context import Containers
from crid.containers.exec_process import exec_process
from crid.containers.running import require_running
from crid.errors import InvalidArgument

FORK_SERVER_HANDLER = "crid"  # runc and others run their own exec command


async def exec_sync(ctx: Containers, request: api_pb2.ExecSyncRequest
                    ) -> api_pb2.ExecSyncResponse:
    if not request.cmd:
        raise InvalidArgument("ExecSync: cmd is required")
    container = require_running(ctx, request.container_id, "ExecSync")
    process = exec_process(Path(container.bundle), list(request.cmd))
    monitor = ctx.monitor(container.handler)
    timeout = request.timeout or None
    result = None
    if ctx.exec_server is not None and monitor.handler.name == FORK_SERVER_HANDLER:
        result = await ctx.exec_server.exec_sync(container.id, process, timeout)
    if result is None:
        result = await monitor.exec_sync(container.id, process, Path(container.bundle), timeout)
    return api_pb2.ExecSyncResponse(stdout=result.stdout, stderr=result.stderr,
                                    exit_code=result.exit_code)
