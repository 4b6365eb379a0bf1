"""ReopenContainerLog: conmon reopens the container's log after kubelet rotated it.

The call returns only once the new file exists, as kubelet expects.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from cri_api.v1 import api_pb2

from crid.containers import monitor as monitors
from crid.containers.context import Containers
from crid.containers.running import require_running
from crid.errors import DeadlineExceeded

REOPEN_POLL_SECONDS = 0.01
REOPEN_POLLS = 500


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
