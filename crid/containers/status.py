"""ContainerStatus and ListContainers: records rendered as the CRI shapes them."""

from __future__ import annotations

import json
from pathlib import Path

from cri_api.v1 import api_pb2

from crid.containers.context import Containers
from crid.containers.records import CREATED, CRI_STATE, RUNNING, Container


async def status(ctx: Containers, request: api_pb2.ContainerStatusRequest
                 ) -> api_pb2.ContainerStatusResponse:
    return _response(ctx.require(request.container_id), request.verbose)


def inline_status(ctx: Containers, request: api_pb2.ContainerStatusRequest
                  ) -> api_pb2.ContainerStatusResponse | None:
    """The answer when nothing is to be recorded first, so the gRPC layer's
    polling thread may give it (reading the records' locked copy, and files):
    under load a light call waiting for the loop cost more than itself.
    None (an id prefix, an unknown id, an exit to record) leaves the call to
    ``status`` on the loop, which does the same and more."""
    container = ctx.records.get(request.container_id)
    if container is None:
        return None
    if container.state in (CREATED, RUNNING) and ctx.exit_written(container.id):
        return None  # find() records that exit: on the loop
    return _response(container, request.verbose)


def _response(container: Container, verbose: bool) -> api_pb2.ContainerStatusResponse:
    info = {}
    if verbose:
        info["info"] = json.dumps(_verbose(container))
    return api_pb2.ContainerStatusResponse(status=to_status(container), info=info)


async def list_containers(ctx: Containers, request: api_pb2.ListContainersRequest
                          ) -> api_pb2.ListContainersResponse:
    """Made again only when the table or the exit watches changed since the same
    request was last answered: kubelet asks the same lists every second or so,
    and copying 100 items into a new response costs ~0.12 ms; the gRPC layer
    serializes the same response object only once."""
    key, stamp = ctx.listings.key(request), _stamp(ctx)
    cached = ctx.listings.get(key, stamp)
    if cached is not None:
        return cached
    wanted = request.filter
    found = []
    settled = True
    for container in ctx.records.all():
        if wanted.id and not container.id.startswith(wanted.id):
            continue
        if wanted.pod_sandbox_id and not container.pod_id.startswith(wanted.pod_sandbox_id):
            continue
        # An unwatched live container's exit file must be read on every call.
        settled = settled and ctx.settled(container)
        container = ctx.current(container)
        if wanted.HasField("state") and CRI_STATE[container.state] != wanted.state.state:
            continue
        if wanted.label_selector and any(container.labels.get(k) != v
                                         for k, v in wanted.label_selector.items()):
            continue
        found.append(_listed(ctx, container))
    response = api_pb2.ListContainersResponse(containers=found)
    if settled:
        ctx.listings.put(key, stamp, response)
    return response


def cached_listing(ctx: Containers, request: api_pb2.ListContainersRequest
                   ) -> api_pb2.ListContainersResponse | None:
    """The last response to the same request if nothing changed since; reads only
    plain values, so the gRPC layer may call it from its polling thread."""
    return ctx.listings.get(ctx.listings.key(request), _stamp(ctx))


def _stamp(ctx: Containers) -> tuple[int, int]:
    # Read before the rows: a write racing a listing then only makes the next miss.
    return ctx.records.generation(), ctx.watch_generation


def _listed(ctx: Containers, c: Container) -> api_pb2.Container:
    """The item for ``c``, made again only when its record changed: records are
    immutable and a write replaces them, so the same record means the same item."""
    cached = ctx.listed.get(c.id)
    if cached is not None and cached[0] is c:
        return cached[1]
    if len(ctx.listed) > 2 * ctx.records.count() + 16:  # forget removed containers
        ctx.listed.clear()
    item = _render(c)
    ctx.listed[c.id] = (c, item)
    return item


def _render(c: Container) -> api_pb2.Container:
    return api_pb2.Container(
        id=c.id, pod_sandbox_id=c.pod_id, metadata=c.metadata,
        image=api_pb2.ImageSpec(image=c.image, annotations=dict(c.config.image.annotations)),
        image_ref=c.image_ref, image_id=c.image_id, state=CRI_STATE[c.state],
        created_at=c.created_ns, labels=c.labels, annotations=c.annotations,
    )


def to_status(c: Container) -> api_pb2.ContainerStatus:
    config = c.config
    return api_pb2.ContainerStatus(
        id=c.id, metadata=c.metadata, state=CRI_STATE[c.state],
        created_at=c.created_ns, started_at=c.started_ns, finished_at=c.finished_ns,
        exit_code=c.exit_code, reason=c.reason, message=c.message,
        image=api_pb2.ImageSpec(image=c.image, annotations=dict(config.image.annotations)),
        image_ref=c.image_ref, image_id=c.image_id, labels=c.labels,
        annotations=c.annotations, mounts=list(config.mounts), log_path=c.log_path,
        resources=api_pb2.ContainerResources(linux=c.resources),
        user=api_pb2.ContainerUser(linux=api_pb2.LinuxContainerUser(
            uid=c.user.uid, gid=c.user.gid, supplemental_groups=list(c.user.groups))),
    )


def statuses_of_pod(ctx: Containers, pod_id: str) -> list[api_pb2.ContainerStatus]:
    return [to_status(ctx.refresh(c)) for c in ctx.records.of_pod(pod_id)]


def _verbose(c: Container) -> dict[str, object]:
    """What containerd puts in ``info``: pid, sandbox, the runtime spec."""
    try:
        spec = json.loads((Path(c.bundle) / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        spec = {}
    return {
        "sandboxID": c.pod_id, "pid": c.pid if c.state == RUNNING else 0,
        "runtimeHandler": c.handler, "monitorPid": c.monitor_pid, "bundle": c.bundle,
        "runtimeSpec": spec,
    }
