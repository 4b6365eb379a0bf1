"""A DaemonSet's pod template as the CRI calls kubelet would make for it.

Owns reading a manifest into the ``kubernetes`` client's models (with the
client's own deserializer, so nothing here parses pod spec fields by hand;
like it, this drops fields the models do not know), and turning the template
into a ``PodSandboxConfig`` and ``ContainerConfig``s: host namespaces,
privilege, command, args, env and hostPath volumes with their propagation.
The node the pod lands on is a ``NodeRoot``: hostPaths are re-rooted under a
temporary directory, except those that must be the host's own (the cgroup
tree). Fields that would change the CRI calls but are not translated here
(resources, other security settings, host ports, ...) raise rather than
being dropped; scheduling fields (tolerations, priority) do not concern the
node's runtime and are ignored.
"""

from __future__ import annotations

import json
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import yaml
from cri_api.v1 import api_pb2
from kubernetes import client

# Kubernetes' mountPropagation values -> CRI (what kubelet's
# kuberuntime makeMounts does). Unset means None.
PROPAGATION = {
    None: api_pb2.PROPAGATION_PRIVATE,
    "None": api_pb2.PROPAGATION_PRIVATE,
    "HostToContainer": api_pb2.PROPAGATION_HOST_TO_CONTAINER,
    "Bidirectional": api_pb2.PROPAGATION_BIDIRECTIONAL,
}


T = TypeVar("T")


def _given(value: T | None, what: str) -> T:
    if value is None:
        raise ValueError(f"the DaemonSet has no {what}")
    return value


def load_daemonset(path: Path) -> client.V1DaemonSet:
    """The one DaemonSet in a YAML manifest, as the client's model."""
    document = yaml.safe_load(path.read_text())
    if document.get("kind") != "DaemonSet":
        raise ValueError(f"{path} holds a {document.get('kind')}, not a DaemonSet")
    with client.ApiClient() as api:
        found: client.V1DaemonSet = api.deserialize(
            json.dumps(document), "V1DaemonSet", "application/json")
    return found


@dataclass
class NodeRoot:
    """Where a pod's hostPaths live: under ``root``, but ``host_paths`` (and what
    is below them) stay the host's own."""

    root: Path
    host_paths: frozenset[str] = frozenset({"/sys/fs/cgroup"})

    def path(self, host_path: str) -> Path:
        if not host_path.startswith("/"):
            raise ValueError(f"hostPath {host_path!r} is not absolute")
        if any(host_path == kept or host_path.startswith(kept + "/")
               for kept in self.host_paths):
            return Path(host_path)
        return self.root / host_path.lstrip("/")

    def prepare(self, source: client.V1HostPathVolumeSource) -> Path:
        """The hostPath's directory on this node, checked or made as its type says."""
        path = self.path(source.path)
        kind = source.type or ""
        if kind == "DirectoryOrCreate":
            path.mkdir(mode=0o755, parents=True, exist_ok=True)
        elif kind == "FileOrCreate":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o644, exist_ok=True)
        elif kind == "Directory" and not path.is_dir():
            raise FileNotFoundError(f"hostPath {source.path} ({path}) is not a directory")
        elif kind == "File" and not path.is_file():
            raise FileNotFoundError(f"hostPath {source.path} ({path}) is not a file")
        elif kind not in ("", "DirectoryOrCreate", "FileOrCreate", "Directory", "File"):
            raise NotImplementedError(f"hostPath type {kind} of {source.path}")
        # An unset type checks nothing: kubelet would bind whatever is there.
        return path


@dataclass
class PodPlan:
    """The CRI requests for one pod of the template, in the order kubelet sends them."""

    sandbox: api_pb2.PodSandboxConfig
    containers: list[api_pb2.ContainerConfig] = field(default_factory=list)


def pod_spec(daemonset: client.V1DaemonSet) -> client.V1PodSpec:
    return _given(daemonset.spec.template.spec, "pod template spec")


def _namespaces(spec: client.V1PodSpec) -> api_pb2.NamespaceOption:
    return api_pb2.NamespaceOption(
        network=api_pb2.NODE if spec.host_network else api_pb2.POD,
        pid=(api_pb2.NODE if spec.host_pid
             else api_pb2.POD if spec.share_process_namespace else api_pb2.CONTAINER),
        ipc=api_pb2.NODE if spec.host_ipc else api_pb2.POD,
    )


def _privileged(container: client.V1Container) -> bool:
    context = container.security_context
    return bool(context is not None and context.privileged)


def _mounts(container: client.V1Container, volumes: dict[str, client.V1Volume],
            node: NodeRoot) -> list[api_pb2.Mount]:
    found = []
    for mount in container.volume_mounts or []:
        if mount.sub_path or mount.sub_path_expr:
            raise NotImplementedError(f"subPath of volume {mount.name}")
        volume = volumes[mount.name]
        if volume.host_path is None:
            raise NotImplementedError(f"volume {mount.name} is not a hostPath")
        if mount.mount_propagation not in PROPAGATION:
            raise ValueError(f"mountPropagation {mount.mount_propagation} of {mount.name}")
        found.append(api_pb2.Mount(
            container_path=mount.mount_path,
            host_path=str(node.prepare(volume.host_path)),
            readonly=bool(mount.read_only),
            propagation=PROPAGATION[mount.mount_propagation],
        ))
    return found


def _refuse_untranslated(spec: client.V1PodSpec, container: client.V1Container) -> None:
    """What kubelet would turn into CRI fields that ``plan_pod`` does not make."""
    context = container.security_context
    found = {
        "initContainers": spec.init_containers,
        "pod securityContext": spec.security_context,
        "shareProcessNamespace": spec.share_process_namespace,
        "resources": container.resources and (container.resources.limits
                                              or container.resources.requests),
        "ports": container.ports,
        "envFrom": container.env_from,
        "volumeDevices": container.volume_devices,
        "stdin/tty": container.stdin or container.tty,
        "lifecycle": container.lifecycle,
        "securityContext beyond privileged": context is not None and any(
            value is not None for key, value in context.to_dict().items()
            if key != "privileged"),
    }
    named = [name for name, value in found.items() if value]
    if named:
        raise NotImplementedError(f"container {container.name}: {', '.join(named)}")


def _env(var: client.V1EnvVar) -> api_pb2.KeyValue:
    if var.value_from is not None:
        raise NotImplementedError(f"valueFrom of env {var.name}")
    return api_pb2.KeyValue(key=var.name, value=var.value or "")


def plan_pod(daemonset: client.V1DaemonSet, node: NodeRoot, images: dict[str, str],
             log_root: Path) -> PodPlan:
    """The pod kubelet would run for ``daemonset`` on ``node``. ``images`` maps the
    template's image names to what to pull instead (an image override, as
    kustomize or a registry mirror would give); ``log_root`` is the node's
    /var/log/pods as the caller's daemon sees it."""
    spec = pod_spec(daemonset)
    for container in spec.containers:
        _refuse_untranslated(spec, container)
    metadata = _given(daemonset.metadata, "metadata")
    template_metadata = _given(daemonset.spec.template.metadata, "pod template metadata")
    namespace = metadata.namespace or "default"
    uid = str(uuid.uuid4())
    name = f"{metadata.name}-{uid[:5]}"
    namespaces = _namespaces(spec)
    privileged = any(_privileged(c) for c in spec.containers)
    labels = dict(template_metadata.labels or {})
    sandbox = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, uid=uid, namespace=namespace),
        # A host-network pod has the node's hostname, as kubelet gives it.
        hostname=socket.gethostname() if spec.host_network else name,
        log_directory=str(log_root / f"{namespace}_{name}_{uid}"),
        labels=labels,
        annotations=dict(template_metadata.annotations or {}),
        linux=api_pb2.LinuxPodSandboxConfig(
            security_context=api_pb2.LinuxSandboxSecurityContext(
                namespace_options=namespaces, privileged=privileged)),
    )
    volumes = {v.name: v for v in spec.volumes or []}
    plan = PodPlan(sandbox)
    for container in spec.containers:
        image = _given(container.image, f"image for container {container.name}")
        plan.containers.append(api_pb2.ContainerConfig(
            metadata=api_pb2.ContainerMetadata(name=container.name),
            image=api_pb2.ImageSpec(image=images.get(image, image)),
            command=list(container.command or []),
            args=list(container.args or []),
            working_dir=container.working_dir or "",
            envs=[_env(e) for e in container.env or []],
            mounts=_mounts(container, volumes, node),
            labels=labels,
            log_path=f"{container.name}/0.log",
            linux=api_pb2.LinuxContainerConfig(
                security_context=api_pb2.LinuxContainerSecurityContext(
                    privileged=_privileged(container), namespace_options=namespaces)),
        ))
    return plan
