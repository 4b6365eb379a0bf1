"""Fuzz target: the validation of CRI requests that carry a client's data.

The input's first byte picks a request type; the rest is its protobuf wire
bytes (``FromString``, as grpc hands them to the servicer). Each is checked
as its call checks it before anything on the node changes:

- ``CreateContainerRequest``: the whole runtime-spec build (``build_spec``:
  user and groups against a rootfs with an image's /etc/passwd and
  /etc/group, capabilities, namespaces, mounts, devices, resources, seccomp,
  masked paths, process args, env and working dir, annotations), on a fake
  node (``tests.oci.spec.fakes.FakeHost``: no host path is created, no host
  device is read). A Localhost seccomp profile is replaced by RuntimeDefault:
  its file is the node's, not the request's.
- ``RunPodSandboxRequest``: required fields, sysctls, the cgroup parent, the
  pod's resolv.conf and hosts, and the CNI capability args (port mappings,
  bandwidth annotations, DNS).
- ``UpdateContainerResourcesRequest``: the resources as the runtime gets them.
- ``PullImageRequest``: the image reference.

Allowed: crid's typed errors, and ``DecodeError`` for bytes that are not the
message (grpc answers those itself). Anything else escaping is a bug: the
interceptor would answer INTERNAL for a request it should have refused, or
the daemon would act on it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cri_api.v1 import api_pb2
from crid.api import names
from crid.api.validation import require
from crid.image.reference import parse
from crid.network import podfiles, sysctls
from crid.network.cni.args import PodNetwork, port_mapping
from crid.oci.cgroups.pod import check_path
from crid.oci.spec import ImageConfig, PodFacts, build_spec
from crid.oci.spec.resources import linux_resources
from google.protobuf.message import DecodeError, Message

from crid.cdi import names as cdi_names
from crid.sandbox import userns
from tests.fuzz.harness import allowing
from tests.fuzz.scratch import directory
from tests.oci.spec.fakes import FakeHost, make_rootfs

IMAGE = ImageConfig(user="alice", env=("PATH=/bin",), entrypoint=("/bin/sh",), cmd=("-c", "true"),
                    working_dir="/home/alice", stop_signal="SIGQUIT")
POD = PodFacts("sandbox", net_ns_path="/run/crid/ns/net/sb", ipc_ns_path="/run/crid/ns/ipc/sb",
               uts_ns_path="/run/crid/ns/uts/sb", resolv_conf_path="/run/crid/sb/resolv.conf",
               hosts_path="/run/crid/sb/hosts", hostname_path="/run/crid/sb/hostname",
               shm_path="/run/crid/sb/shm")
LOCALHOST = api_pb2.SecurityProfile.ProfileType.Localhost
PROTOCOLS = {0: "TCP", 1: "UDP", 2: "SCTP"}


@functools.cache
def rootfs() -> Path:
    return make_rootfs(directory() / "rootfs")


def create_container(request: api_pb2.CreateContainerRequest) -> None:
    config = request.config
    names.check_container(config)
    for device in cdi_names.requested(config):
        cdi_names.parse(device)
    security = config.linux.security_context
    if security.seccomp.profile_type == LOCALHOST:
        security.seccomp.profile_type = api_pb2.SecurityProfile.ProfileType.RuntimeDefault
    if security.seccomp_profile_path.startswith("localhost/"):
        security.seccomp_profile_path = "runtime/default"
    build_spec("c" * 64, config, request.sandbox_config, IMAGE, POD, str(rootfs()),
               host=FakeHost())


def run_pod_sandbox(request: api_pb2.RunPodSandboxRequest) -> None:
    require(request, "config", "config.metadata", "config.metadata.name",
            "config.metadata.uid", "config.metadata.namespace")
    config = request.config
    names.check_pod(config)
    options = config.linux.security_context.namespace_options
    userns.pod_mapping(options)
    sysctls.check(dict(config.linux.sysctls), host_network=options.network == 2,
                  host_ipc=options.ipc == 2)
    if config.linux.cgroup_parent:
        check_path(config.linux.cgroup_parent)
    dns = config.dns_config
    podfiles.resolv_conf(list(dns.servers), list(dns.searches), list(dns.options), "")
    podfiles.hosts(config.hostname, ["10.88.0.2", "fd00::2"])
    network = PodNetwork(
        id="p" * 64, name=config.metadata.name, namespace=config.metadata.namespace,
        uid=config.metadata.uid, netns="/run/crid/ns/net/p",
        port_mappings=[port_mapping(PROTOCOLS.get(m.protocol, "TCP"), m.container_port,
                                    m.host_port, m.host_ip) for m in config.port_mappings],
        annotations=dict(config.annotations),
        dns={"servers": list(dns.servers), "searches": list(dns.searches),
             "options": list(dns.options)})
    network.cni_args()
    network.capability_args()


def update_resources(request: api_pb2.UpdateContainerResourcesRequest) -> None:
    linux_resources(request.linux, FakeHost())


def pull_image(request: api_pb2.PullImageRequest) -> None:
    parse(request.image.image)


CALLS: tuple[tuple[type[Message], Callable[[Any], None]], ...] = (
    (api_pb2.CreateContainerRequest, create_container),
    (api_pb2.RunPodSandboxRequest, run_pod_sandbox),
    (api_pb2.UpdateContainerResourcesRequest, update_resources),
    (api_pb2.PullImageRequest, pull_image),
)


def one_input(data: bytes) -> None:
    if not data:
        return
    message, check = CALLS[data[0] % len(CALLS)]
    with allowing(DecodeError):
        check(message.FromString(data[1:]))

