"""build_spec end to end over a real tmp rootfs: composition, annotations,
and every generated spec passes the runtime-spec check."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from cri_api.v1 import api_pb2
from crid.oci.runtime_spec import Mount, Spec
from crid.oci.spec import BuiltSpec, ImageConfig, PodFacts, build_spec
from crid.oci.spec.security import ALL_CAPABILITIES

from crid.errors import FailedPrecondition, InvalidArgument, NotFound
from crid.jsontypes import Json
from tests.oci.spec.fakes import FakeHost, make_rootfs
from tests.oci.spec.runtime_spec_check import check
from tests.oci.spec.seccomp_eval import allowed

M = api_pb2.NamespaceMode
Kind = api_pb2.SecurityProfile.ProfileType
IMAGE = ImageConfig(user="alice", env=("PATH=/bin", "LANG=C"), entrypoint=("/bin/sh", "-c"),
                    cmd=("echo hi",), working_dir="/home/alice", stop_signal="SIGQUIT")
POD = PodFacts(
    "sandbox1", net_ns_path="/run/crid/ns/net/sb1", ipc_ns_path="/run/crid/ns/ipc/sb1",
    uts_ns_path="/run/crid/ns/uts/sb1", resolv_conf_path="/run/crid/sb1/resolv.conf",
    hosts_path="/run/crid/sb1/hosts", hostname_path="/run/crid/sb1/hostname",
    shm_path="/run/crid/sb1/shm",
)


def sandbox(privileged: bool = False, **linux: Any) -> api_pb2.PodSandboxConfig:
    return api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name="web-0", namespace="default", uid="u-1"),
        hostname="web-0",
        linux=api_pb2.LinuxPodSandboxConfig(
            cgroup_parent="/kubepods/podu-1",
            security_context=api_pb2.LinuxSandboxSecurityContext(privileged=privileged),
            **linux,
        ),
    )


def config(sc: api_pb2.LinuxContainerSecurityContext | None = None,
           **fields: Any) -> api_pb2.ContainerConfig:
    """A request shaped like kubelet's: namespace options always set."""
    sc = sc or api_pb2.LinuxContainerSecurityContext()
    if not sc.HasField("namespace_options"):
        sc.namespace_options.CopyFrom(api_pb2.NamespaceOption(
            network=M.POD, ipc=M.POD, pid=M.CONTAINER))
    return api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name="app", attempt=0),
        image=api_pb2.ImageSpec(image="sha256:abc"),
        linux=api_pb2.LinuxContainerConfig(security_context=sc,
                                           resources=fields.pop("resources", None)),
        **fields,
    )


@pytest.fixture
def rootfs(tmp_path: Path) -> str:
    return str(make_rootfs(tmp_path / "rootfs"))


def build(rootfs: str, cfg: api_pb2.ContainerConfig | None = None,
          sb: api_pb2.PodSandboxConfig | None = None, pod: PodFacts = POD,
          image: ImageConfig = IMAGE, host: FakeHost | None = None) -> BuiltSpec:
    built = build_spec("c1", cfg or config(), sb or sandbox(), image, pod, rootfs,
                       image_name="docker.io/library/busybox:latest", host=host or FakeHost())
    problems = check(built.spec)
    assert problems == []
    json.dumps(built.spec)  # serializable as config.json
    return built


def _mounts(spec: Spec) -> dict[str, Mount]:
    return {m["destination"]: m for m in spec["mounts"]}


def test_kubelet_shaped_request(rootfs: str) -> None:
    cfg = config(
        args=["sleep 1"], envs=[api_pb2.KeyValue(key="LANG", value="C.UTF-8")],
        annotations={"io.kubernetes.container.hash": "abc"},
        mounts=[api_pb2.Mount(host_path="/var/lib/kubelet/pods/u-1/etc-hosts",
                              container_path="/etc/hosts")],
        resources=api_pb2.LinuxContainerResources(cpu_shares=2, memory_limit_in_bytes=1 << 26,
                                                  oom_score_adj=1000),
    )
    built = build(rootfs, cfg)
    spec = built.spec
    assert spec["ociVersion"] == "1.0.2"
    assert spec["root"] == {"path": rootfs, "readonly": False}
    p = spec["process"]
    assert p["args"] == ["/bin/sh", "-c", "sleep 1"]
    assert p["env"] == ["HOSTNAME=web-0", "PATH=/bin", "LANG=C.UTF-8"]
    assert p["cwd"] == "/home/alice"
    assert p["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [1000, 100, 10, 29]}
    assert p["oomScoreAdj"] == 1000
    assert p["noNewPrivileges"] is False
    assert "hostname" not in spec  # the pod's pinned UTS namespace carries it
    assert spec["annotations"] == {
        "io.kubernetes.container.hash": "abc",
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.container-name": "app",
        "io.kubernetes.cri.sandbox-id": "sandbox1",
        "io.kubernetes.cri.sandbox-name": "web-0",
        "io.kubernetes.cri.sandbox-namespace": "default",
        "io.kubernetes.cri.sandbox-uid": "u-1",
        "io.kubernetes.cri.image-name": "docker.io/library/busybox:latest",
    }
    linux = spec["linux"]
    assert linux["cgroupsPath"] == "/kubepods/podu-1/c1"
    assert linux["resources"]["cpu"] == {"shares": 2}
    assert linux["resources"]["memory"] == {"limit": 1 << 26, "swap": 1 << 26}
    assert {n["type"]: n.get("path") for n in linux["namespaces"]} == {
        "pid": None, "network": "/run/crid/ns/net/sb1", "ipc": "/run/crid/ns/ipc/sb1",
        "uts": "/run/crid/ns/uts/sb1", "mount": None, "cgroup": None}
    assert "seccomp" not in linux  # unset profile is Unconfined
    assert "rootfsPropagation" not in linux
    mounts = _mounts(spec)
    assert mounts["/etc/hosts"]["source"] == "/var/lib/kubelet/pods/u-1/etc-hosts"
    assert mounts["/etc/resolv.conf"]["source"] == "/run/crid/sb1/resolv.conf"
    assert mounts["/dev/shm"]["source"] == "/run/crid/sb1/shm"
    assert linux["maskedPaths"] and linux["readonlyPaths"]
    assert built.stop_signal == "SIGQUIT"
    assert built.user.uid == 1000


def test_without_pod_gets_own_namespaces_and_hostname(rootfs: str) -> None:
    spec = build(rootfs, pod=PodFacts("sb")).spec
    assert spec["hostname"] == "web-0"
    assert all("path" not in n for n in spec["linux"]["namespaces"])
    assert _mounts(spec)["/dev/shm"]["type"] == "tmpfs"


def test_host_network_pod(rootfs: str) -> None:
    sc = api_pb2.LinuxContainerSecurityContext(namespace_options=api_pb2.NamespaceOption(
        network=M.NODE, ipc=M.NODE, pid=M.NODE))
    spec = build(rootfs, config(sc), pod=PodFacts("sb")).spec
    assert [n["type"] for n in spec["linux"]["namespaces"]] == ["mount", "cgroup"]
    assert "hostname" not in spec


def test_privileged(rootfs: str) -> None:
    sc = api_pb2.LinuxContainerSecurityContext(
        privileged=True, seccomp=api_pb2.SecurityProfile(profile_type=Kind.RuntimeDefault),
        capabilities=api_pb2.Capability(drop_capabilities=["ALL"]))
    spec = build(rootfs, config(sc), sandbox(privileged=True)).spec
    linux = spec["linux"]
    assert spec["process"]["capabilities"]["bounding"] == list(ALL_CAPABILITIES)
    assert linux["maskedPaths"] == [] and linux["readonlyPaths"] == []
    assert "seccomp" not in linux
    assert linux["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    assert {d["path"] for d in linux["devices"]} >= {"/dev/fuse", "/dev/sda"}
    assert "rw" in _mounts(spec)["/sys"]["options"]


def test_privileged_container_needs_privileged_pod(rootfs: str) -> None:
    sc = api_pb2.LinuxContainerSecurityContext(privileged=True)
    with pytest.raises(InvalidArgument, match="privileged pod"):
        build(rootfs, config(sc))


def test_readonly_rootfs_and_no_new_privs(rootfs: str) -> None:
    sc = api_pb2.LinuxContainerSecurityContext(readonly_rootfs=True, no_new_privs=True)
    spec = build(rootfs, config(sc)).spec
    assert spec["root"]["readonly"] is True
    assert spec["process"]["noNewPrivileges"] is True
    assert "ro" in _mounts(spec)["/etc/resolv.conf"]["options"]


def test_runtime_default_seccomp(rootfs: str) -> None:
    sc = api_pb2.LinuxContainerSecurityContext(
        seccomp=api_pb2.SecurityProfile(profile_type=Kind.RuntimeDefault))
    seccomp = build(rootfs, config(sc)).spec["linux"]["seccomp"]
    assert not allowed(seccomp, "unshare")
    assert allowed(seccomp, "read")


def test_propagation_sets_rootfs_propagation(rootfs: str) -> None:
    cfg = config(mounts=[api_pb2.Mount(
        host_path="/mnt/shared/x", container_path="/x",
        propagation=api_pb2.MountPropagation.PROPAGATION_BIDIRECTIONAL)])
    assert build(rootfs, cfg).spec["linux"]["rootfsPropagation"] == "rshared"
    private = config(mounts=[api_pb2.Mount(
        host_path="/srv", container_path="/x",
        propagation=api_pb2.MountPropagation.PROPAGATION_BIDIRECTIONAL)])
    with pytest.raises(FailedPrecondition):
        build(rootfs, private)


def test_sysctls_and_devices(rootfs: str) -> None:
    sb = sandbox(sysctls={"net.ipv4.ip_unprivileged_port_start": "0"})
    cfg = config(devices=[api_pb2.Device(host_path="/dev/fuse", container_path="/dev/fuse",
                                         permissions="rwm")])
    spec = build(rootfs, cfg, sb).spec
    assert spec["linux"]["sysctl"] == {"net.ipv4.ip_unprivileged_port_start": "0"}
    assert [d["path"] for d in spec["linux"]["devices"]] == ["/dev/fuse"]


@pytest.mark.parametrize(("request_signal", "image_signal", "expected"), [
    (api_pb2.Signal.SIGUSR1, "SIGQUIT", "SIGUSR1"),
    (api_pb2.Signal.RUNTIME_DEFAULT, "SIGQUIT", "SIGQUIT"),
    (api_pb2.Signal.RUNTIME_DEFAULT, "quit", "SIGQUIT"),
    (api_pb2.Signal.RUNTIME_DEFAULT, "9", "SIGKILL"),
    (api_pb2.Signal.RUNTIME_DEFAULT, "", "SIGTERM"),
])
def test_stop_signal(rootfs: str, request_signal: int, image_signal: str, expected: str) -> None:
    image = ImageConfig(cmd=("true",), stop_signal=image_signal)
    built = build(rootfs, config(stop_signal=request_signal), image=image)
    assert built.stop_signal == expected


@pytest.mark.parametrize("image_signal", ["SIGNOPE", "999"])
def test_bad_image_stop_signal(rootfs: str, image_signal: str) -> None:
    with pytest.raises(InvalidArgument, match="StopSignal"):
        build(rootfs, image=ImageConfig(cmd=("true",), stop_signal=image_signal))


def test_missing_image_user_is_invalid(rootfs: str) -> None:
    with pytest.raises(InvalidArgument, match="user 'ghost' not found"):
        build(rootfs, image=ImageConfig(user="ghost", cmd=("true",)))


def _breakable(spec: Spec) -> Json:
    """A deep copy to break on purpose: any JSON, not a ``Spec`` any more."""
    copied: Json = json.loads(json.dumps(spec))
    return copied


def test_checker_catches_broken_specs(rootfs: str) -> None:
    good = build(rootfs).spec
    breakages = [
        ("process", "args", []),
        ("process", "cwd", "relative"),
        ("process", "env", ["NOEQUALS"]),
        ("linux", "cgroupsPath", "relative"),
        ("linux", "namespaces", [{"type": "pid"}, {"type": "pid"}]),
        ("linux", "namespaces", [{"type": "bogus"}]),
        ("linux", "seccomp", {"defaultAction": "SCMP_ACT_MAYBE"}),
        ("root", "readonly", "yes"),
    ]
    for section, key, value in breakages:
        bad = _breakable(good)
        bad[section][key] = value
        assert check(bad), (section, key, value)
    bad = _breakable(good)
    bad["hostname"] = "x"
    bad["linux"]["namespaces"] = [{"type": "mount"}]
    assert any("UTS" in p for p in check(bad))
    bad = _breakable(good)
    bad["process"]["capabilities"]["ambient"] = ["CAP_SYS_ADMIN"]
    assert check(bad)


def test_privileged_on_a_runtime_without_sys_resource(rootfs: str) -> None:
    mask = (1 << 41) - 1 - (1 << 24)
    sc = api_pb2.LinuxContainerSecurityContext(privileged=True)
    spec = build(rootfs, config(sc), sandbox(privileged=True),
                 host=FakeHost(capability_mask=mask)).spec
    assert "CAP_SYS_RESOURCE" not in spec["process"]["capabilities"]["bounding"]
    assert len(spec["process"]["capabilities"]["bounding"]) == 40


def test_missing_host_paths_created_only_when_the_request_is_good(rootfs: str) -> None:
    host = FakeHost()
    good = config(mounts=[api_pb2.Mount(host_path="/new/dir", container_path="/d")])
    build(rootfs, good, host=host)
    assert host.created == ["/new/dir"]
    refused = FakeHost()
    bad = config(mounts=[api_pb2.Mount(host_path="/new/dir", container_path="/d")],
                 devices=[api_pb2.Device(host_path="/dev/nope", container_path="/dev/n")])
    with pytest.raises(NotFound):
        build(rootfs, bad, host=refused)
    assert refused.created == []


def test_cgroup_parent_from_pod_facts_first(rootfs: str) -> None:
    pod = PodFacts("sb", cgroup_parent="/crid/pod-sb")
    assert build(rootfs, pod=pod).spec["linux"]["cgroupsPath"] == "/crid/pod-sb/c1"
    no_parent = api_pb2.PodSandboxConfig(hostname="h")
    assert build(rootfs, sb=no_parent, pod=PodFacts("sb")).spec["linux"]["cgroupsPath"] == (
        "/crid/c1")


USERNS_POD = dataclasses.replace(POD, user_ns_path="/run/crid/sb1/user",
                                 id_mapping=((0, 200000, 65536),),
                                 premapped=frozenset({"/run/crid/c1/image-volumes/0"}))
POD_MAP = [{"containerID": 0, "hostID": 200000, "size": 65536}]


def test_a_pod_with_a_user_namespace(rootfs: str) -> None:
    own = api_pb2.IDMapping(container_id=0, host_id=5000, length=65536)
    cfg = config(mounts=[
        api_pb2.Mount(host_path="/var/lib/kubelet/pods/u-1/volumes/data", container_path="/data"),
        api_pb2.Mount(host_path="/srv/shifted", container_path="/shifted",
                      uidMappings=[own], gidMappings=[own]),
        api_pb2.Mount(host_path="/run/crid/c1/image-volumes/0", container_path="/vol",
                      readonly=True)])
    spec = build(rootfs, cfg, pod=USERNS_POD).spec
    linux = spec["linux"]
    assert linux["namespaces"][0] == {"type": "user", "path": "/run/crid/sb1/user"}
    assert linux["uidMappings"] == POD_MAP and linux["gidMappings"] == POD_MAP
    mounts = _mounts(spec)
    for dest in ("/etc/resolv.conf", "/etc/hosts", "/etc/hostname", "/dev/shm", "/data"):
        assert mounts[dest]["uidMappings"] == POD_MAP, dest
        assert mounts[dest]["gidMappings"] == POD_MAP, dest
    assert mounts["/shifted"]["uidMappings"] == [
        {"containerID": 0, "hostID": 5000, "size": 65536}]
    assert "uidMappings" not in mounts["/vol"]  # the daemon idmapped the image volume
    assert "uidMappings" not in mounts["/proc"]


def test_no_privileged_container_in_a_user_namespace(rootfs: str) -> None:
    sc = api_pb2.LinuxContainerSecurityContext(privileged=True)
    with pytest.raises(InvalidArgument, match="user namespace"):
        build(rootfs, config(sc), sandbox(privileged=True), pod=USERNS_POD)
