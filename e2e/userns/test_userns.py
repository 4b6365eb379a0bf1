"""Pods in a user namespace of their own (``hostUsers: false``), for real:
ids inside and on the host, the idmapped rootfs and volumes, the pod's
files, refusals, and a daemon restart."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import grpc
import pytest
from cri_api.v1 import api_pb2

from e2e.containers.conftest import Env, PodMaker
from e2e.containers.helpers import create, exec_sync, pull, run, sh, verbose_pid
from e2e.fixtures.daemon import mounts_under
from e2e.fixtures.images import Image, RunConfig, multi_layer_image
from e2e.fixtures.layers import File, make_layer
from e2e.fixtures.registry import Registry
from e2e.sandbox.pods import pod_config, stop_remove
from e2e.userns.conftest import HOST_ID, LENGTH, UsernsPodMaker, userns_options

I64 = api_pb2.Int64Value


def _host_ids(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return int(fields["Uid"].split()[0]), int(fields["Gid"].split()[0])


def _user_ns(pid: int) -> int:
    return os.stat(f"/proc/{pid}/ns/user").st_ino


def _sc(**fields: object) -> api_pb2.LinuxContainerConfig:
    return api_pb2.LinuxContainerConfig(
        security_context=api_pb2.LinuxContainerSecurityContext(**fields))  # type: ignore[arg-type]


def test_root_inside_is_the_pods_range_outside(env: Env, make_userns_pod: UsernsPodMaker
                                               ) -> None:
    pod = make_userns_pod()
    cid = run(env.daemon, pod.id, pod.config, env.image)
    assert sh(env.daemon, cid, "id -u; id -g").split() == ["0", "0"]
    for name in ("uid_map", "gid_map"):
        assert sh(env.daemon, cid, f"cat /proc/self/{name}").split() == [
            "0", str(HOST_ID), str(LENGTH)]
    pid = verbose_pid(env.daemon, cid)
    assert _host_ids(pid) == (HOST_ID, HOST_ID)
    assert _user_ns(pid) != _user_ns(os.getpid())
    # RunAsUser is an id inside: 1000 in the pod is HOST_ID + 1000 on the host.
    other = run(env.daemon, pod.id, pod.config, env.image, linux=_sc(run_as_user=I64(value=1000)))
    assert sh(env.daemon, other, "id -u").strip() == "1000"
    assert _host_ids(verbose_pid(env.daemon, other))[0] == HOST_ID + 1000
    assert _user_ns(verbose_pid(env.daemon, other)) == _user_ns(pid)  # one namespace per pod


def test_image_files_are_roots_inside_and_layers_untouched(
        env: Env, make_userns_pod: UsernsPodMaker) -> None:
    pod = make_userns_pod()
    cid = run(env.daemon, pod.id, pod.config, env.image)
    assert sh(env.daemon, cid, "stat -c %u:%g / /bin /bin/sh /etc").split() == ["0:0"] * 4
    sh(env.daemon, cid, "echo hi > /written && mkdir /made")
    uppers = list((env.daemon.root / "containers").glob("*/upper/written"))
    assert len(uppers) == 1
    # Through the (plain) upper dir: the container's root is HOST_ID on disk.
    assert (uppers[0].stat().st_uid, uppers[0].stat().st_gid) == (HOST_ID, HOST_ID)
    # No layer was chowned: the image's files stay the host's root's.
    layers = [p for p in env.daemon.root.rglob("bin/busybox") if "containers" not in p.parts]
    assert layers and all(p.stat().st_uid == 0 for p in layers)


def test_volume_files_have_the_in_container_owner_on_disk(
        env: Env, make_userns_pod: UsernsPodMaker, tmp_path: Path) -> None:
    """As with containerd 2.x and cri-o: volumes are idmapped with the pod's
    mapping, so a file is owned on disk by the id that wrote it inside."""
    volume = tmp_path / "empty-dir"
    volume.mkdir(mode=0o777)
    volume.chmod(0o777)
    (volume / "from-host").write_text("host\n")
    pod = make_userns_pod()
    mounts = [api_pb2.Mount(container_path="/data", host_path=str(volume))]
    root = run(env.daemon, pod.id, pod.config, env.image, mounts=mounts)
    user = run(env.daemon, pod.id, pod.config, env.image, mounts=mounts,
               linux=_sc(run_as_user=I64(value=1000), run_as_group=I64(value=3000)))
    sh(env.daemon, root, "echo root > /data/by-root")
    sh(env.daemon, user, "echo user > /data/by-user")
    assert sh(env.daemon, root, "stat -c %u:%g /data/from-host /data").split() == ["0:0", "0:0"]
    assert os.stat(volume / "by-root")[4:6] == (0, 0)
    assert os.stat(volume / "by-user")[4:6] == (1000, 3000)


def test_read_only_secret_is_readable_as_the_containers_user(
        env: Env, make_userns_pod: UsernsPodMaker, tmp_path: Path) -> None:
    """A secret volume as kubelet makes it: root's files, group readable by the
    pod's fsGroup. Without the idmap they would belong to the overflow ids
    inside and be unreadable."""
    secret = tmp_path / "secret"
    secret.mkdir(mode=0o750)
    os.chown(secret, 0, 2000)
    (secret / "token").write_text("s3cr3t\n")
    os.chown(secret / "token", 0, 2000)
    (secret / "token").chmod(0o440)
    (secret / "root-only").write_text("root\n")
    (secret / "root-only").chmod(0o400)
    pod = make_userns_pod()
    mounts = [api_pb2.Mount(container_path="/var/secret", host_path=str(secret), readonly=True)]
    user = run(env.daemon, pod.id, pod.config, env.image, mounts=mounts,
               linux=_sc(run_as_user=I64(value=1000), supplemental_groups=[2000]))
    assert sh(env.daemon, user, "cat /var/secret/token") == "s3cr3t\n"
    assert exec_sync(env.daemon, user, "cat", "/var/secret/root-only").exit_code != 0
    assert exec_sync(env.daemon, user, "touch", "/var/secret/x").exit_code != 0
    root = run(env.daemon, pod.id, pod.config, env.image, mounts=mounts)
    assert sh(env.daemon, root, "cat /var/secret/root-only") == "root\n"
    assert exec_sync(env.daemon, root, "touch", "/var/secret/x").exit_code != 0  # read-only


def test_pod_files_are_roots_inside(env: Env, make_userns_pod: UsernsPodMaker) -> None:
    pod = make_userns_pod()
    cid = run(env.daemon, pod.id, pod.config, env.image)
    owners = sh(env.daemon, cid, "stat -c %u:%g /etc/resolv.conf /etc/hosts /etc/hostname "
                                 "/dev/shm").split()
    assert owners == ["0:0"] * 4
    sh(env.daemon, cid, "echo x > /etc/hosts.test 2>/dev/null; echo 1 > /dev/shm/x; "
                        "cat /dev/shm/x; grep -q . /etc/hostname")
    # The pod's net namespace is owned by its user namespace, so /sys is a
    # sysfs of its own (not the host's bound in): it lists the pod's links.
    links = {line.split(":")[0].strip() for line in
             sh(env.daemon, cid, "tail -n +3 /proc/net/dev").splitlines()}
    assert set(sh(env.daemon, cid, "ls /sys/class/net").split()) == links
    assert "eth0" in links


def test_modes_other_than_pod_and_node_are_refused_by_name(env: Env) -> None:
    for mode in (api_pb2.CONTAINER, api_pb2.TARGET):
        linux = api_pb2.LinuxPodSandboxConfig(security_context=api_pb2.LinuxSandboxSecurityContext(
            namespace_options=api_pb2.NamespaceOption(
                userns_options=api_pb2.UserNamespace(mode=mode))))
        with pytest.raises(grpc.RpcError) as caught:
            env.daemon.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(
                config=pod_config(linux=linux)))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert api_pb2.NamespaceMode.Name(mode) in (caught.value.details() or "")


def test_bad_ranges_and_runc_are_refused(env: Env) -> None:
    for linux, handler, why in (
            (userns_options(host_id=0), "crid", "host's root"),
            (userns_options(length=1000), "crid", "shorter"),
            (userns_options(), "runc", "does not support user namespaces")):
        with pytest.raises(grpc.RpcError) as caught:
            env.daemon.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(
                config=pod_config(linux=linux), runtime_handler=handler))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert why in (caught.value.details() or "")


def test_privileged_container_refused(env: Env, make_userns_pod: UsernsPodMaker) -> None:
    pod = make_userns_pod()
    with pytest.raises(grpc.RpcError) as caught:
        create(env.daemon, pod.id, pod.config, env.image, linux=_sc(privileged=True))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "user namespace" in (caught.value.details() or "")


def test_status_reports_user_namespaces_per_handler(env: Env) -> None:
    handlers = {h.name: h.features.user_namespaces for h in env.daemon.runtime.Status(
        api_pb2.StatusRequest()).runtime_handlers}
    assert handlers["crid"] is True and handlers[""] is True
    assert handlers["runc"] is False  # runc 1.1 has no idmapped mounts


def test_restart_keeps_the_pod_and_a_new_container_joins(
        env: Env, make_userns_pod: UsernsPodMaker) -> None:
    pod = make_userns_pod()
    before = run(env.daemon, pod.id, pod.config, env.image)
    ns = _user_ns(verbose_pid(env.daemon, before))
    env.daemon.restart()
    status = env.daemon.runtime.PodSandboxStatus(
        api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod.id)).status
    assert status.state == api_pb2.SANDBOX_READY
    after = run(env.daemon, pod.id, pod.config, env.image)
    assert _user_ns(verbose_pid(env.daemon, after)) == ns
    assert _user_ns(verbose_pid(env.daemon, before)) == ns
    assert sh(env.daemon, after, "cat /proc/self/uid_map").split() == ["0", str(HOST_ID),
                                                                       str(LENGTH)]


def test_removed_pod_leaves_no_mount(env: Env) -> None:
    config = pod_config(linux=userns_options())
    pod_id = env.daemon.runtime.RunPodSandbox(
        api_pb2.RunPodSandboxRequest(config=config)).pod_sandbox_id
    run(env.daemon, pod_id, config, env.image)
    stop_remove(env.daemon, pod_id)
    assert [m for m in mounts_under(env.daemon.workdir) if pod_id in m] == []
    assert not [m for m in mounts_under(env.daemon.workdir) if "idmapped" in m]


def test_image_volumes_are_roots_inside(env: Env, make_userns_pod: UsernsPodMaker,
                                        registry: Registry) -> None:
    """Both kinds the daemon makes: an overlay of several layers (its layers
    idmapped: an overlay cannot be) and one layer's bind, with a sub path."""
    layered = pull(env.daemon, registry, multi_layer_image())
    single = pull(env.daemon, registry, Image((make_layer([
        File("/share/greeting", b"hello\n")]),), config=RunConfig()))
    pod = make_userns_pod()
    cid = run(env.daemon, pod.id, pod.config, env.image, mounts=[
        api_pb2.Mount(container_path=path, readonly=True, image_sub_path=sub,
                      image=api_pb2.ImageSpec(image=ref))
        for path, ref, sub in (("/layered", layered, ""), ("/single", single, ""),
                               ("/part", single, "share"))])
    assert sh(env.daemon, cid, "cat /layered/data/one /part/greeting") == "one v2\nhello\n"
    assert sh(env.daemon, cid, "stat -c %u:%g /layered/data/one /layered/bin/busybox "
                               "/single/share/greeting /part/greeting").split() == ["0:0"] * 4
    assert exec_sync(env.daemon, cid, "touch", "/layered/new").exit_code != 0
    env.daemon.runtime.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=0))
    env.daemon.runtime.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid))
    assert not [m for m in mounts_under(env.daemon.workdir) if "image-volumes" in m]


def test_a_shared_pid_namespace_is_inside_the_user_namespace(
        env: Env, make_userns_pod: UsernsPodMaker) -> None:
    pod = make_userns_pod(pid=api_pb2.POD)
    cid = run(env.daemon, pod.id, pod.config, env.image)
    assert sh(env.daemon, cid, "cat /proc/1/comm").strip() == "catatonit"
    pid = verbose_pid(env.daemon, cid)
    pid_ns = os.stat(f"/proc/{pid}/ns/pid").st_ino
    infra = [p for p in os.listdir("/proc") if p.isdigit() and _pid_ns(p) == pid_ns
             and Path(f"/proc/{p}/comm").read_text().strip() == "catatonit"]
    assert len(infra) == 1
    # The pod's infra process is in its user namespace too: nobody on the host.
    assert _host_ids(int(infra[0])) == (HOST_ID, HOST_ID)
    assert _user_ns(int(infra[0])) == _user_ns(pid)


def _pid_ns(pid: str) -> int:
    try:
        return os.stat(f"/proc/{pid}/ns/pid").st_ino
    except OSError:
        return -1


def test_supplemental_groups_are_ids_inside(env: Env, make_userns_pod: UsernsPodMaker) -> None:
    pod = make_userns_pod()
    cid = run(env.daemon, pod.id, pod.config, env.image, linux=_sc(
        run_as_user=I64(value=1000), run_as_group=I64(value=3000), supplemental_groups=[2000],
        supplemental_groups_policy=api_pb2.SupplementalGroupsPolicy.Strict))
    assert sorted(sh(env.daemon, cid, "id -G").split()) == ["2000", "3000"]
    with open(f"/proc/{verbose_pid(env.daemon, cid)}/status") as f:
        groups = next(line for line in f if line.startswith("Groups:")).split()[1:]
    assert sorted(groups) == [str(HOST_ID + 2000), str(HOST_ID + 3000)]


def test_a_mounts_own_mappings_are_honoured(env: Env, make_pod: PodMaker,
                                            tmp_path: Path) -> None:
    """``Mount.uidMappings``/``gidMappings`` idmap that mount, even in a pod in
    the host's user namespace; runc 1.1 cannot, so its pods are refused them."""
    volume = tmp_path / "shifted"
    volume.mkdir()
    volume.chmod(0o755)
    os.chown(volume, 1000, 1000)
    shifted = [api_pb2.IDMapping(container_id=0, host_id=5000, length=65536)]
    mount = api_pb2.Mount(container_path="/shifted", host_path=str(volume), readonly=True,
                          uidMappings=shifted, gidMappings=shifted)
    pod = make_pod()
    cid = run(env.daemon, pod.id, pod.config, env.image, mounts=[mount])
    assert sh(env.daemon, cid, "stat -c %u:%g /shifted").strip() == "6000:6000"
    config = pod_config()
    runc_pod = env.daemon.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(
        config=config, runtime_handler="runc")).pod_sandbox_id
    try:
        with pytest.raises(grpc.RpcError) as caught:
            create(env.daemon, runc_pod, config, env.image, mounts=[mount])
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "idmapped" in (caught.value.details() or "")
    finally:
        stop_remove(env.daemon, runc_pod)


def test_pod_sysctls_in_namespaces_the_pod_owns(env: Env, make_userns_pod: UsernsPodMaker
                                                ) -> None:
    """Net sysctls want CAP_NET_ADMIN over the netns, IPC ones the euid of
    the IPC namespace's owner's root: both are set, in the pod's only."""
    wanted = {"net.ipv4.ip_unprivileged_port_start": "80", "kernel.shm_rmid_forced": "1",
              "fs.mqueue.msg_max": "20"}
    pod = make_userns_pod(sysctls=wanted)
    cid = run(env.daemon, pod.id, pod.config, env.image)
    seen = sh(env.daemon, cid, "cat /proc/sys/net/ipv4/ip_unprivileged_port_start "
                               "/proc/sys/kernel/shm_rmid_forced /proc/sys/fs/mqueue/msg_max")
    assert seen.split() == ["80", "1", "20"]
    host = [Path("/proc/sys", *name.split(".")).read_text().strip() for name in wanted]
    assert host != ["80", "1", "20"]  # the host's are its own


def test_no_other_user_reaches_the_bundles_control_fifo(env: Env, make_userns_pod: UsernsPodMaker
                                                       ) -> None:
    """The path to a user-namespaced container's rootfs opens to the pod's root
    group only: a node user (``nobody``) cannot open conmon's ``ctl`` FIFO
    (mkfifo 0666 less the umask) to steal or forge resize and log-reopen messages."""
    pod = make_userns_pod()
    cid = run(env.daemon, pod.id, pod.config, env.image)
    ctl = env.daemon.runroot / "containers" / cid / "ctl"
    assert ctl.exists()
    # Reaching the FIFO is the attack: stat needs search permission on every dir.
    done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           "/bin/sh", "-c", '[ -e "$1" ] && echo reached || echo denied',
                           "sh", str(ctl)],
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "denied"
    assert sh(env.daemon, cid, "echo reached").strip() == "reached"  # the pod's root still does
