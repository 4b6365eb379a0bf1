"""``crid check`` against a real daemon: clean when nothing leaked, and every
kind of leak, each made on purpose, named, exit 1, and cleared by ``--repair``.

One daemon (private root, bridge, subnet and cgroup parent) with a pulled
busybox serves the module. The leak test kills it with SIGKILL (as a crash
would), makes each leak by hand (rows deleted with sqlite3, pins, cgroups,
mounts, blobs and exit files planted, a conmon killed, a bundle deleted),
checks, repairs, checks again, and starts the daemon again on what is left.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cri_api.v1 import api_pb2

from e2e.containers.conftest import Env, started_env
from e2e.containers.helpers import create, run, verbose_pid, wait_state
from e2e.fixtures.daemon import CRID, CridDaemon
from e2e.fixtures.images import push, whiteout_image
from e2e.fixtures.registry import Registry
from e2e.sandbox.pods import CGROUP_ROOT, info, namespace_options, pod_config

FAKE_POD = "f" * 64
FAKE_CONTAINER = "e" * 64


@pytest.fixture(scope="module")
def env(registry: Registry) -> Iterator[Env]:
    with started_env(registry) as found:
        yield found


def check(daemon: CridDaemon, *extra: str) -> tuple[int, dict[str, Any], str]:
    """Run ``crid check --json`` with the daemon's flags: exit code, output, stderr."""
    flags = daemon.command()[1:]
    done = subprocess.run([str(CRID), "check", *flags, "--json", *extra],
                          capture_output=True, text=True, timeout=120, check=False)
    tree = json.loads(done.stdout) if done.stdout.strip() else {}
    return done.returncode, tree, done.stderr


def kinds(tree: dict[str, Any]) -> set[tuple[str, str]]:
    return {(f["kind"], f["subject"]) for f in tree["findings"]}


def new_pod(env: Env, **fields: Any) -> tuple[str, api_pb2.PodSandboxConfig]:
    config = pod_config(**fields)
    pod_id = env.daemon.runtime.RunPodSandbox(
        api_pb2.RunPodSandboxRequest(config=config)).pod_sandbox_id
    return str(pod_id), config


def test_a_daemon_with_pods_and_containers_checks_clean(env: Env) -> None:
    pod_id, config = new_pod(env)
    run(env.daemon, pod_id, config, env.image)
    exited = create(env.daemon, pod_id, config, env.image, command=["/bin/true"])
    env.daemon.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=exited))
    wait_state(env.daemon, exited, api_pb2.CONTAINER_EXITED)
    create(env.daemon, pod_id, config, env.image)  # created, never started

    code, tree, _ = check(env.daemon)  # beside the running daemon: read-only, no lock
    assert (code, tree["findings"]) == (0, [])
    code, _, err = check(env.daemon, "--repair")
    assert code == 2 and "stop it before --repair" in err
    # Item 5: the pod's address is reserved in host-local's per-network dir,
    # which the default conf leaves to the plugin; no address store in the root.
    address = info(env.daemon, pod_id)["status"].network.ip
    assert (env.net.ipam_dir / address).read_text().splitlines()[0] == pod_id
    assert not (env.daemon.root / "cni" / "networks").exists()


def test_a_default_conf_naming_a_root_is_reported(env: Env) -> None:
    conf = env.daemon.cni_config_dir / "10-crid-bridge.conflist"
    written = conf.read_text()
    tree = json.loads(written)
    tree["plugins"][0]["ipam"]["dataDir"] = "/var/lib/another-crid/cni/networks"
    try:
        conf.write_text(json.dumps(tree))
        code, found, _ = check(env.daemon)
        assert code == 1
        [finding] = found["findings"]
        assert finding["kind"] == "cni-conf-cross-root"
        assert "another root's dir /var/lib/another-crid" in finding["detail"]
        assert finding["repairable"] is False  # pods attached with it release through it
    finally:
        conf.write_text(written)
    assert check(env.daemon)[0] == 0


def test_every_leak_is_named_and_repaired(env: Env, tmp_path: Path) -> None:
    daemon = env.daemon
    # A pod whose row will be lost, with a running container (also row-less).
    # Sharing one PID namespace (as pods without namespace options do): an
    # infra process (catatonit) as well.
    lost_pod, lost_config = new_pod(env, linux=namespace_options(pid=api_pb2.POD))
    lost_container = run(daemon, lost_pod, lost_config, env.image)
    lost_infra = int(info(daemon, lost_pod)["pid"])
    # A pod that stays, with containers to break in place.
    pod_id, config = new_pod(env)
    orphaned_monitor = run(daemon, pod_id, config, env.image)
    exits_unseen = run(daemon, pod_id, config, env.image)
    bundle_gone = create(daemon, pod_id, config, env.image)
    pinless_pod, _ = new_pod(env)
    # A pod with a host port whose row and cached CNI result will both be lost:
    # only its iptables rules (and its pins and cgroup) still name it.
    unnamed_pod, _ = new_pod(env, port_mappings=[api_pb2.PortMapping(
        container_port=80, host_port=random.randint(20000, 29999), host_ip="127.0.0.1")])
    unnamed_infra = int(info(daemon, unnamed_pod)["pid"])
    exits_unseen_pid = verbose_pid(daemon, exits_unseen)
    pod_cgroup = info(daemon, pod_id)["cgroupParent"]

    daemon.kill()  # SIGKILL: nothing cleans up

    with sqlite3.connect(daemon.root / "crid.db") as db:
        db.execute("DELETE FROM containers WHERE pod_id = ?", (lost_pod,))
        db.execute("DELETE FROM sandboxes WHERE id IN (?, ?)", (lost_pod, unnamed_pod))
    (daemon.root / "cni" / "results" / f"{unnamed_pod}.json").unlink()
    # What a crash between writing a pod's CNI result and renaming it leaves.
    cut_off = daemon.root / "cni" / "results" / f"{unnamed_pod}.tmp"
    cut_off.write_text('{"network": "crid-')
    monitor_pid = int((daemon.runroot / "containers" / orphaned_monitor / "conmon.pid")
                      .read_text())
    os.kill(monitor_pid, signal.SIGKILL)
    os.kill(exits_unseen_pid, signal.SIGKILL)
    exit_file = daemon.runroot / "exits" / exits_unseen
    wait_for(exit_file.exists)
    subprocess.run(["umount", "--lazy", str(daemon.runroot / "containers" / bundle_gone
                                             / "rootfs")], check=True)
    subprocess.run(["rm", "-rf", str(daemon.runroot / "containers" / bundle_gone)], check=True)
    subprocess.run(["umount", str(daemon.runroot / "pods" / pinless_pod / "net")], check=True)
    planted = plant(daemon, env, tmp_path, pod_cgroup)

    try:
        code, tree, _ = check(daemon)
        assert code == 1
        found = kinds(tree)
        expected = {
            ("pod-dir-without-pod", str(daemon.runroot / "pods" / lost_pod)),
            ("cni-result-without-pod", str(daemon.root / "cni" / "results" / f"{lost_pod}.json")),
            ("cgroup-without-pod", f"{env.net.cgroup_parent}/crid-{lost_pod}"),
            ("bundle-without-container", str(daemon.runroot / "containers" / lost_container)),
            ("layer-without-container", str(daemon.root / "containers" / lost_container)),
            ("mount-without-container",
             str(daemon.runroot / "containers" / lost_container / "rootfs")),
            ("conmon-without-container", f"pid {conmon_of(daemon, lost_container)}"),
            ("infra-without-pod", f"pid {lost_infra}"),
            ("infra-without-pod", f"pid {unnamed_infra}"),
            ("monitor-gone", orphaned_monitor),
            ("exit-not-recorded", exits_unseen),
            ("container-files-missing", bundle_gone),
            ("pod-without-namespace", pinless_pod),
            ("iptables-without-pod", unnamed_pod),
            ("cni-result-temp-without-pod", str(cut_off)),
            ("pod-dir-without-pod", str(daemon.runroot / "pods" / unnamed_pod)),
            ("cgroup-without-pod", f"{env.net.cgroup_parent}/crid-{unnamed_pod}"),
            *planted,
        }
        assert expected <= found, f"missing: {expected - found}"
        assert found <= expected, f"unexpected: {found - expected}"

        code, tree, err = check(daemon, "--repair")
        assert (code, tree["findings"]) == (0, []), tree
        assert "could not repair" not in err
        repaired = {(r["kind"], r["subject"]) for r in tree["repaired"]}
        assert expected <= repaired
        # A pod's PID 1 killed takes its containers along; their conmons then
        # write exit files, which the next pass removes.
        assert {kind for kind, _ in repaired - expected} <= {"exit-file-without-container"}
        assert check(daemon)[0] == 0
        assert unnamed_pod not in iptables_rules()
        assert not any(Path(f"/proc/{pid}").exists() for pid in (lost_infra, unnamed_infra))
        assert not (daemon.runroot / "pods" / lost_pod).exists()
        assert not (CGROUP_ROOT / "memory" / env.net.cgroup_parent.lstrip("/")
                    / f"crid-{lost_pod}").exists()
    finally:
        check(daemon, "--repair")  # a failed assertion must not leave the leaks on the node
        daemon.start()
    # The daemon starts on the repaired state, sees what the repairs recorded...
    assert status_state(daemon, orphaned_monitor) == api_pb2.CONTAINER_UNKNOWN
    assert status_state(daemon, exits_unseen) == api_pb2.CONTAINER_EXITED
    assert info(daemon, pinless_pod)["status"].state == api_pb2.SANDBOX_NOTREADY
    # ...and its own recovery finds nothing more to differ.
    assert check(daemon)[0] == 0


def test_an_image_missing_a_blob_or_layer_is_named(env: Env, registry: Registry) -> None:
    daemon = env.daemon
    pushed = push(registry, "e2e/check-whiteout", "1", whiteout_image())
    image_id = daemon.image.PullImage(api_pb2.PullImageRequest(
        image=api_pb2.ImageSpec(image=pushed.reference))).image_ref
    with sqlite3.connect(f"file:{daemon.root / 'crid.db'}?mode=ro", uri=True) as db:
        chains = json.loads(db.execute("SELECT chain_ids FROM images WHERE id = ?",
                                       (image_id,)).fetchone()[0])
    top = chains[-1]  # this image's own: busybox's are below it
    subprocess.run(["rm", "-rf", str(daemon.root / "image" / "snapshots"
                                     / top.removeprefix("sha256:"))], check=True)
    (daemon.root / "image" / "content" / "blobs" / "sha256"
     / pushed.digest.removeprefix("sha256:")).unlink()

    code, tree, _ = check(daemon)
    assert code == 1
    assert kinds(tree) == {("image-layer-missing", top), ("image-blob-missing", pushed.digest),
                           ("layer-row-without-layer", top)}
    assert [f["kind"] for f in tree["findings"] if f["repairable"]] == \
        ["layer-row-without-layer"]
    daemon.restart()  # start-up drops an image missing its files, then what only it used
    assert check(daemon)[0] == 0
    assert daemon.image.ImageStatus(api_pb2.ImageStatusRequest(
        image=api_pb2.ImageSpec(image=image_id))).image.id == ""


def plant(daemon: CridDaemon, env: Env, tmp_path: Path, pod_cgroup: str
          ) -> set[tuple[str, str]]:
    """Leaks no row ever knew: a netns pin, cgroups, an overlay mount, an exit
    file, a blob, a layer and an unpack's leftover, an address reservation."""
    pod_dir = daemon.runroot / "pods" / FAKE_POD
    pod_dir.mkdir()
    (pod_dir / "net").touch()
    subprocess.run(["unshare", f"--net={pod_dir / 'net'}", "true"], check=True)

    for top in CGROUP_ROOT.iterdir():
        base = top / env.net.cgroup_parent.lstrip("/")
        if base.is_dir():
            (base / f"crid-{FAKE_POD}").mkdir()
        if (top / pod_cgroup.lstrip("/")).is_dir():
            (top / pod_cgroup.lstrip("/") / FAKE_CONTAINER).mkdir()

    bundle = daemon.runroot / "containers" / FAKE_CONTAINER
    (bundle / "rootfs").mkdir(parents=True)
    for part in ("lower", "upper", "work"):
        (tmp_path / part).mkdir()
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={tmp_path / 'lower'},upperdir={tmp_path / 'upper'},"
                    f"workdir={tmp_path / 'work'}", str(bundle / "rootfs")], check=True)

    (daemon.runroot / "exits" / FAKE_POD).write_text("0")

    data = b"a blob no image names"
    digest = hashlib.sha256(data).hexdigest()
    (daemon.root / "image" / "content" / "blobs" / "sha256" / digest).write_bytes(data)
    chain = hashlib.sha256(b"a layer no image names").hexdigest()
    (daemon.root / "image" / "snapshots" / chain / "fs").mkdir(parents=True)
    leftover = daemon.root / "image" / "snapshots" / "tmp-unpack-died"
    leftover.mkdir()

    reservations = daemon.root / "cni" / "networks" / env.net.name  # as older crids kept them
    reservations.mkdir(parents=True)
    (reservations / f"10.88.{env.net.third}.250").write_text(f"{FAKE_POD}\neth0\n")

    cgroup_parent = env.net.cgroup_parent
    return {
        ("pod-dir-without-pod", str(pod_dir)),
        ("cgroup-without-pod", f"{cgroup_parent}/crid-{FAKE_POD}"),
        ("cgroup-without-container", f"{pod_cgroup}/{FAKE_CONTAINER}"),
        ("mount-without-container", str(bundle / "rootfs")),
        ("bundle-without-container", str(bundle)),
        ("exit-file-without-container", str(daemon.runroot / "exits" / FAKE_POD)),
        ("blob-without-image", f"sha256:{digest}"),
        ("layer-without-image", f"sha256:{chain}"),
        ("layer-unpack-leftover", str(leftover)),
        ("address-without-pod", str(reservations / f"10.88.{env.net.third}.250")),
    }


def iptables_rules() -> str:
    return "".join(subprocess.run(["iptables-save", "-t", table], capture_output=True,
                                  text=True, check=True).stdout for table in ("nat", "filter"))


def conmon_of(daemon: CridDaemon, container_id: str) -> int:
    return int((daemon.runroot / "containers" / container_id / "conmon.pid").read_text())


def status_state(daemon: CridDaemon, container_id: str) -> int:
    return int(daemon.runtime.ContainerStatus(
        api_pb2.ContainerStatusRequest(container_id=container_id)).status.state)


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
