"""Exec: a one-time URL on the streaming server for a command in a running container.

The command itself runs when the client follows the URL (``crid.containers.streams``).
"""

from __future__ import annotations

from cri_api.v1 import api_pb2

from crid.containers.context import Containers
from crid.containers.running import require_running
from crid.streaming import tokens
from crid.streaming.server import StreamingServer


async def exec_url(ctx: Containers, streaming: StreamingServer, request: api_pb2.ExecRequest
                   ) -> api_pb2.ExecResponse:
    container = require_running(ctx, request.container_id, "Exec")
    return api_pb2.ExecResponse(url=streaming.url_for(tokens.ExecRequest(
        container.id, tuple(request.cmd), tty=request.tty, stdin=request.stdin,
        stdout=request.stdout, stderr=request.stderr)))
