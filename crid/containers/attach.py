"""Attach: a one-time URL on the streaming server for a running container's own stdio.

The attach itself happens when the client follows the URL (``crid.containers.streams``).
"""

from __future__ import annotations

from cri_api.v1 import api_pb2

from crid.containers.context import Containers
from crid.containers.running import require_running
from crid.streaming import tokens
from crid.streaming.server import StreamingServer


async def attach_url(ctx: Containers, streaming: StreamingServer,
                     request: api_pb2.AttachRequest) -> api_pb2.AttachResponse:
    container = require_running(ctx, request.container_id, "Attach")
    return api_pb2.AttachResponse(url=streaming.url_for(tokens.AttachRequest(
        container.id, tty=request.tty, stdin=request.stdin, stdout=request.stdout,
        stderr=request.stderr)))
