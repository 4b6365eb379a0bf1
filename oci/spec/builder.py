"""``build_spec``: one CRI CreateContainer request → a runtime-spec config.json.

Composes the concern modules of this package; the caller (the container
service) supplies the image config, facts about the pod, and the rootfs path,
and writes ``BuiltSpec.spec`` as the bundle's config.json.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

from cri_api.v1 import api_pb2
from crid.oci.runtime_spec import Linux, Spec
from crid.oci.spec import devices, mounts, namespaces, process, resources, security, user
from crid.oci.spec.facts import PodFacts
from crid.oci.spec.host import Host
from crid.oci.spec.image_config import ImageConfig

from crid.errors import InvalidArgument

OCI_VERSION = "1.0.2"

# The annotation keys containerd sets, so tools that read them work with crid.
CONTAINER_TYPE = "io.kubernetes.cri.container-type"
CONTAINER_NAME = "io.kubernetes.cri.container-name"
SANDBOX_ID = "io.kubernetes.cri.sandbox-id"
SANDBOX_NAME = "io.kubernetes.cri.sandbox-name"
SANDBOX_NAMESPACE = "io.kubernetes.cri.sandbox-namespace"
SANDBOX_UID = "io.kubernetes.cri.sandbox-uid"
IMAGE_NAME = "io.kubernetes.cri.image-name"


@dataclass(frozen=True)
class BuiltSpec:
    spec: Spec
    user: user.ResolvedUser
    stop_signal: str  # e.g. "SIGTERM": the request's, else the image's, else SIGTERM


def stop_signal(config: api_pb2.ContainerConfig, image: ImageConfig) -> str:
    if config.stop_signal != api_pb2.Signal.RUNTIME_DEFAULT:
        return api_pb2.Signal.Name(config.stop_signal)
    text = image.stop_signal.strip().upper()
    if not text:
        return "SIGTERM"
    try:
        number = int(text)
    except ValueError:
        name = text if text.startswith("SIG") else "SIG" + text
        if name not in signal.Signals.__members__:
            raise InvalidArgument(f"image StopSignal {image.stop_signal!r} is unknown") from None
        return name
    try:
        return signal.Signals(number).name
    except ValueError:
        raise InvalidArgument(f"image StopSignal {image.stop_signal!r} is unknown") from None


def _annotations(
    container_id: str, config: api_pb2.ContainerConfig, sandbox: api_pb2.PodSandboxConfig,
    pod: PodFacts, image_name: str,
) -> dict[str, str]:
    found = dict(config.annotations)
    found.update({
        CONTAINER_TYPE: "container",
        CONTAINER_NAME: config.metadata.name,
        SANDBOX_ID: pod.sandbox_id,
        SANDBOX_NAME: sandbox.metadata.name,
        SANDBOX_NAMESPACE: sandbox.metadata.namespace,
        SANDBOX_UID: sandbox.metadata.uid,
        IMAGE_NAME: image_name or config.image.image,
    })
    return found


def build_spec(
    container_id: str,
    config: api_pb2.ContainerConfig,
    sandbox: api_pb2.PodSandboxConfig,
    image: ImageConfig,
    pod: PodFacts,
    rootfs: str,
    *,
    image_name: str = "",
    host: Host | None = None,
    passwd_group_limit: int = user.DEFAULT_FILE_LIMIT,
) -> BuiltSpec:
    """The spec for ``container_id``; raises ``crid.errors`` on a bad request.

    ``rootfs`` is the container's root filesystem (already mounted or
    unpacked): the image's /etc/passwd and /etc/group are read from it, each
    up to ``passwd_group_limit`` bytes.
    ``host`` is the seam for node facts (mountinfo, devices, oom_score_adj).
    Host paths of mounts that do not exist are created, as kubelet expects.
    """
    host = host or Host()
    sc = config.linux.security_context
    if pod.user_ns_path and sc.privileged:
        raise InvalidArgument("a privileged container cannot run in a pod with a user "
                              "namespace (hostUsers: false)")
    if sc.privileged and not sandbox.linux.security_context.privileged:
        raise InvalidArgument(
            "a privileged container needs a privileged pod (pod security context)"
        )
    security.check_apparmor(sc)
    ids = user.resolve_user(sc, image.user, rootfs, passwd_group_limit)
    caps = security.capabilities(sc, security.from_mask(host.capability_mask()))
    ns_options = namespaces.for_container(
        sc.namespace_options, sandbox.linux.security_context.namespace_options)
    ns = namespaces.namespaces(ns_options, pod)
    hostname = namespaces.hostname(ns_options, pod, sandbox.hostname)
    res = config.linux.resources

    idmap = pod.oci_mappings()
    requested, rootfs_propagation = mounts.cri_mounts(list(config.mounts), host, idmap,
                                                      pod.premapped)
    all_mounts = mounts.assemble(
        mounts.default_mounts(sc.privileged),
        mounts.pod_mounts(pod, sc.readonly_rootfs, idmap),
        requested,
    )
    device_nodes, device_rules = devices.devices(list(config.devices), sc.privileged, host)
    linux_resources = resources.linux_resources(res, host)
    linux_resources["devices"] = device_rules

    linux: Linux = {
        "resources": linux_resources,
        "cgroupsPath": resources.cgroups_path(pod.cgroup_parent or sandbox.linux.cgroup_parent,
                                              container_id),
        "namespaces": ns,
        "devices": device_nodes,
        "maskedPaths": security.masked_paths(sc),
        "readonlyPaths": security.readonly_paths(sc),
    }
    profile = security.seccomp(sc, caps["bounding"])
    if profile is not None:
        linux["seccomp"] = profile
    if sandbox.linux.sysctls:
        linux["sysctl"] = dict(sandbox.linux.sysctls)
    if rootfs_propagation:
        linux["rootfsPropagation"] = rootfs_propagation
    if idmap:
        linux["uidMappings"] = idmap
        linux["gidMappings"] = list(idmap)

    spec: Spec = {
        "ociVersion": OCI_VERSION,
        "process": process.build_process(
            config, image,
            hostname=sandbox.hostname,
            user=ids.to_oci(),
            capabilities=caps,
            no_new_privileges=sc.no_new_privs,
            oom_score_adj=resources.oom_score_adj(res, host),
            nofile=host.nofile_limit(),
        ),
        "root": {"path": rootfs, "readonly": sc.readonly_rootfs},
        "mounts": all_mounts,
        "annotations": _annotations(container_id, config, sandbox, pod, image_name),
        "linux": linux,
    }
    if hostname:
        spec["hostname"] = hostname
    # The one side effect, last, so a refused request creates nothing.
    for m in config.mounts:
        host.ensure_dir(m.host_path)
    return BuiltSpec(spec, ids, stop_signal(config, image))
