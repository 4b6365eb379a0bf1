"""CheckpointContainer: answered UNIMPLEMENTED, with the reason, so kubelet's
checkpoint API reports why rather than a bare "unknown method"."""

from __future__ import annotations

from cri_api.v1 import api_pb2

from crid.errors import Unimplemented


async def checkpoint(request: api_pb2.CheckpointContainerRequest
                     ) -> api_pb2.CheckpointContainerResponse:
    raise Unimplemented(
        "CheckpointContainer is not supported by crid: checkpointing needs CRIU, which "
        "neither runc's nor crid-runtime's integration here provides; restart the pod "
        "instead of migrating it")
