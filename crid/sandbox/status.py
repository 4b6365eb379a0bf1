"""PodSandboxStatus and ListPodSandbox: pods as the CRI reports them."""

from __future__ import annotations

import json

from cri_api.v1 import api_pb2

from crid.sandbox import records
from crid.sandbox.context import Sandboxes
from crid.sandbox.infra import is_alive

_STATES = {records.READY: api_pb2.SANDBOX_READY, records.NOTREADY: api_pb2.SANDBOX_NOTREADY}


def state_of(sandbox: records.Sandbox) -> api_pb2.PodSandboxState.ValueType:
    """READY only while the pod is whole: a pod whose infra process died (its
    PID namespace is gone) is not ready, as a pod whose pause container exited."""
    if sandbox.state == records.READY and sandbox.infra and not is_alive(sandbox.infra):
        return api_pb2.SANDBOX_NOTREADY
    return _STATES[sandbox.state]


async def status(ctx: Sandboxes, request: api_pb2.PodSandboxStatusRequest
                 ) -> api_pb2.PodSandboxStatusResponse:
    sandbox = ctx.require(request.pod_sandbox_id)
    info = {}
    if request.verbose:
        info["info"] = json.dumps(verbose_info(sandbox))
    return api_pb2.PodSandboxStatusResponse(
        status=pod_status(sandbox), info=info,
        containers_statuses=ctx.pod_containers.statuses(sandbox.id),
        timestamp=ctx.clock.now_ns())


def pod_status(sandbox: records.Sandbox) -> api_pb2.PodSandboxStatus:
    config = sandbox.config
    ips = list(sandbox.ips)
    network = api_pb2.PodSandboxNetworkStatus(
        ip=ips[0] if ips else "",
        additional_ips=[api_pb2.PodIP(ip=ip) for ip in ips[1:]],
    )
    options = config.linux.security_context.namespace_options
    return api_pb2.PodSandboxStatus(
        id=sandbox.id, metadata=config.metadata, state=state_of(sandbox),
        created_at=sandbox.created_ns, network=network,
        linux=api_pb2.LinuxPodSandboxStatus(
            namespaces=api_pb2.Namespace(options=api_pb2.NamespaceOption(
                network=options.network, pid=options.pid, ipc=options.ipc))),
        labels=config.labels, annotations=config.annotations,
        runtime_handler=sandbox.runtime_handler,
    )


def verbose_info(sandbox: records.Sandbox) -> dict[str, object]:
    return {
        "id": sandbox.id,
        "netns": sandbox.netns,
        "namespaces": dict(sandbox.namespaces),
        "cgroupParent": sandbox.cgroup_parent,
        "podDir": sandbox.pod_dir,
        "shm": sandbox.shm,
        "resolvConf": f"{sandbox.pod_dir}/resolv.conf",
        "hosts": f"{sandbox.pod_dir}/hosts",
        "hostname": f"{sandbox.pod_dir}/hostname",
        "pid": sandbox.infra.pid if sandbox.infra else 0,
        "ips": list(sandbox.ips),
        "networkTeardownPending": sandbox.network_pending,
        "runtimeHandler": sandbox.runtime_handler,
    }


def list_sandboxes(ctx: Sandboxes, request: api_pb2.ListPodSandboxRequest
                   ) -> api_pb2.ListPodSandboxResponse:
    """The response made last time for the same request while the table and every
    pod's state (its infra process's liveness, asked on each call) are unchanged;
    the gRPC layer then serializes nothing again. Thread-safe: the gRPC layer
    calls it from its polling thread."""
    key = ctx.listings.key(request)
    generation = ctx.records.generation()  # before the rows: a racing write only misses
    wanted = request.filter
    found = ctx.records.by_prefix(wanted.id) if wanted.id else ctx.records.all()
    states = tuple(state_of(sandbox) for sandbox in found)
    cached = ctx.listings.get(key, (generation, states))
    if cached is not None:
        return cached
    items = []
    for sandbox, state in zip(found, states, strict=True):
        if wanted.HasField("state") and wanted.state.state != state:
            continue
        labels = sandbox.labels
        if any(labels.get(k) != v for k, v in wanted.label_selector.items()):
            continue
        items.append(_listed(ctx, sandbox, state))
    response = api_pb2.ListPodSandboxResponse(items=items)
    ctx.listings.put(key, (generation, states), response)
    return response


def _listed(ctx: Sandboxes, sandbox: records.Sandbox,
            state: api_pb2.PodSandboxState.ValueType) -> api_pb2.PodSandbox:
    """The item for ``sandbox``, made again only when its record (immutable, replaced
    on every write) or its state changed."""
    cached = ctx.listed.get(sandbox.id)
    if cached is not None and cached[0] is sandbox and cached[1].state == state:
        return cached[1]
    if len(ctx.listed) > 2 * ctx.records.count() + 16:  # forget removed pods
        ctx.listed.clear()
    item = api_pb2.PodSandbox(
        id=sandbox.id, metadata=sandbox.metadata, state=state,
        created_at=sandbox.created_ns, labels=sandbox.labels,
        annotations=sandbox.annotations, runtime_handler=sandbox.runtime_handler,
    )
    ctx.listed[sandbox.id] = (sandbox, item)
    return item
