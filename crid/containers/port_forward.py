"""PortForward: a one-time URL on the streaming server for connections into a pod's netns.

The connections are made when the client follows the URL (``crid.containers.streams``).
"""

from __future__ import annotations

from cri_api.v1 import api_pb2

from crid.errors import NotFound
from crid.sandbox.context import Sandboxes
from crid.streaming import tokens
from crid.streaming.server import StreamingServer


async def port_forward_url(sandboxes: Sandboxes, streaming: StreamingServer,
                           request: api_pb2.PortForwardRequest
                           ) -> api_pb2.PortForwardResponse:
    pod = sandboxes.find(request.pod_sandbox_id)
    if pod is None:
        raise NotFound(f"pod sandbox {request.pod_sandbox_id!r} not found")
    return api_pb2.PortForwardResponse(url=streaming.url_for(
        tokens.PortForwardRequest(pod.id, tuple(request.port))))
