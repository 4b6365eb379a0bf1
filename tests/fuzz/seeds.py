"""Write the seed corpus, ``corpus/<target>/``, from real inputs: ``python -P -m tests.fuzz.seeds``.

The seeds are the inputs crid really meets, so the fuzzer starts deep
inside each parser: the test registry's images (e2e.fixtures: OCI and
Docker manifests, indexes and configs, layers with whiteouts, opaque dirs,
hard and symbolic links, fifos), tars with pax records, xattrs, long names
and GNU sparse files (made by GNU tar), the repository's config examples,
CNI results as the CNI spec shows them, the frames a kubectl exec sends
over SPDY and WebSocket, and CRI requests as crictl sends them. Each file
is named by its content's sha1, as libFuzzer names corpus entries; running
this again rewrites the same files.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable
from pathlib import Path

from cri_api.v1 import api_pb2
from crid.network.cni.config import default_network
from google.protobuf import json_format
from google.protobuf.message import Message

from crid.streaming.spdy import frames
from crid.streaming.websocket import EXEC_PROTOCOLS
from e2e.fixtures import images, layers
from tests.fuzz.fuzz_cri import CALLS
from tests.image import test_registries as registries_test
from tests.oci.spec.fakes import GROUP, PASSWD

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parents[1]
DIGEST = "sha256:" + "ab" * 32


def manifest() -> Iterable[bytes]:
    for make in images.RECIPES.values():
        artifact = make()
        if isinstance(artifact, images.Index):
            yield artifact.index_blob.data
            artifact = artifact.images[0]
        yield artifact.manifest_blob.data
        yield artifact.config_blob.data


def reference() -> Iterable[bytes]:
    for text in ("busybox", "busybox:1.36", "library/busybox", "docker.io/library/busybox:latest",
                 "index.docker.io/library/busybox", "quay.io/org/app/sub:v1.2-rc_3",
                 "localhost:5000/team/app@" + DIGEST, "[::1]:5000/x:tag@" + DIGEST,
                 "registry.test/a__b/c--d/e.f", DIGEST, "ab" * 32):
        yield text.encode()


def _tar(members: Iterable[tuple[tarfile.TarInfo, bytes]], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data else None)
    return out.getvalue()


def _info(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, **fields: object
          ) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mtime = kind, size, 1700000000
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def _gnu_sparse() -> list[bytes]:
    """A sparse file archived by GNU tar: its old GNU format, and PAX sparse 0.0.

    (PAX sparse 0.1 and 1.0 name a header after tar's pid: never the same twice.)
    """
    with tempfile.TemporaryDirectory(dir=CHECKOUT / "build") as scratch:
        with open(Path(scratch) / "sparse", "wb") as f:
            f.seek(64 * 1024)
            f.write(b"end\n")
        stable = ["--mtime=@1700000000", "--owner=0", "--group=0", "--numeric-owner"]
        pax = ["--format=pax", "--pax-option=exthdr.name=%d/PaxHeaders/%f,exthdr.mtime=0,"
               "delete=atime,delete=ctime"]
        forms = [["--format=gnu"], [*pax, "--sparse-version=0.0"]]
        return [subprocess.run(["tar", "--sparse", *form, *stable, "-C", scratch, "-cf", "-",
                                "sparse"], capture_output=True, check=True).stdout
                for form in forms]


def tar() -> Iterable[bytes]:
    f = layers.File
    entries: list[list[layers.Entry]] = [
        [f("/data/keep", b"keep\n"), f("/data/gone", b"gone\n"), f("/opt/app/old1", b"old1\n")],
        [layers.whiteout("/data/gone"), layers.Dir("/opt/app"), layers.opaque("/opt/app"),
         f("/opt/app/new", b"new\n")],
        [f("/data/file", b"linked\n", mode=0o640, uid=33, gid=33),
         layers.Hardlink("/data/hard1", "/data/file"), layers.Symlink("/data/abs", "/data/file"),
         layers.Symlink("/data/rel", "file"), layers.Fifo("/data/fifo")],
    ]
    for number, listed in enumerate(entries):
        raw = layers.build_tar(listed)
        yield raw
        if number == 0:
            yield gzip.compress(raw, mtime=0)
            yield layers.make_layer(listed, layers.Compression.ZSTD).blob
    long_name = "d" * 60 + "/" + "e" * 60 + "/" + "f" * 120
    yield _tar([(_info(long_name, size=3), b"abc")], tarfile.GNU_FORMAT)
    yield _tar([(_info(long_name, size=3), b"abc")], tarfile.PAX_FORMAT)
    yield _tar([(_info("d" * 90 + "/" + "g" * 90, size=1), b"x")], tarfile.USTAR_FORMAT)
    yield _tar([(_info("x", size=2, pax_headers={"SCHILY.xattr.user.k": "v",
                                                 "SCHILY.xattr.trusted.overlay.opaque": "y",
                                                 "mtime": "1700000000.5"}), b"hi")])
    yield _tar([(_info("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666), b""),
                (_info("dev/sda", tarfile.BLKTYPE, devmajor=8, devminor=0), b""),
                (_info("a", tarfile.SYMTYPE, linkname="../../etc"), b""),
                (_info("a/.wh..wh..opq"), b"")], tarfile.GNU_FORMAT)
    yield from _gnu_sparse()


def registries() -> Iterable[bytes]:
    yield (CHECKOUT / "manifests/examples/registries.conf").read_bytes()
    yield registries_test.CONF.encode()  # mirrors, a wildcard, a blocked registry


def config() -> Iterable[bytes]:
    yield (CHECKOUT / "manifests/crid.toml").read_bytes()
    yield b"""[crid.api]
stream_port = 10010
[crid.runtime]
default_handler = "kata"
[crid.runtime.handlers.kata]
path = "/usr/bin/kata-runtime"
root = "/run/kata"
"""


def cni() -> Iterable[bytes]:
    # The CNI spec's example ADD result (SPEC.md, "Success") and error.
    yield json.dumps({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "cni0", "mac": "00:11:22:33:44:55"},
                       {"name": "eth0", "mac": "00:11:22:33:44:66",
                        "sandbox": "/var/run/netns/blue"}],
        "ips": [{"address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 1},
                {"address": "fd00::5/64", "interface": 1}],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dns": {"nameservers": ["10.1.0.1"]},
    }, indent=2).encode()
    yield json.dumps({"cniVersion": "0.3.1", "ips": [{"version": "4", "address": "10.88.0.7/16",
                                                     "gateway": "10.88.0.1"}]}).encode()
    yield json.dumps({"cniVersion": "1.0.0", "code": 7, "msg": "Invalid Configuration",
                      "details": "Network 192.168.0.0/31 too small to allocate from"}).encode()
    yield json.dumps(default_network("crid", "crid0", "10.88.0.0/16"),
                     indent=2).encode()
    yield json.dumps({"cniVersion": "0.4.0", "name": "single", "type": "bridge",
                      "capabilities": {"portMappings": True}}).encode()


def _spdy_exec() -> list[bytes]:
    """A kubectl exec -it over SPDY: five streams, stdin, a resize, then the end."""
    codec = frames.HeaderCodec()

    def syn(stream_id: int, kind: str) -> frames.Frame:
        return frames.SynStream(stream_id, {"streamtype": [kind], "port": ["80"]}
                                if kind == "data" else {"streamtype": [kind]})
    sent: list[frames.Frame] = [frames.Settings({frames.SETTINGS_INITIAL_WINDOW_SIZE: 1 << 20}),
            frames.WindowUpdate(0, 1 << 20), syn(1, "error"), syn(3, "stdin"), syn(5, "stdout"),
            syn(7, "resize"), frames.Data(3, b"echo hi\n"),
            frames.Data(7, b'{"Width":80,"Height":24}'), frames.Ping(1),
            frames.HeadersFrame(5, {"x": ["y"]}), frames.Data(3, b"", fin=True),
            frames.RstStream(5, frames.CANCEL), frames.GoAway(7)]
    whole = b"".join(frames.encode(frame, codec) for frame in sent)
    forward = frames.HeaderCodec()
    port = b"".join(frames.encode(frame, forward) for frame in (
        syn(1, "error"), syn(3, "data"), frames.Data(3, b"GET / HTTP/1.0\r\n\r\n", fin=True)))
    return [whole, port]


def spdy() -> Iterable[bytes]:
    yield from _spdy_exec()


def _ws_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """One client frame (RFC 6455 5.2), masked with a fixed key so seeds are stable."""
    mask = b"\x11\x22\x33\x44"
    head = bytes([(0x80 if fin else 0) | opcode])
    size = len(payload)
    if size < 126:
        head += bytes([0x80 | size])
    elif size < 1 << 16:
        head += bytes([0x80 | 126]) + size.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + size.to_bytes(8, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def websocket() -> Iterable[bytes]:
    """kubectl exec -it over v5 (binary) and base64 channels: stdin, a resize, stdin's end."""
    text, binary, continuation, close, ping = 0x1, 0x2, 0x0, 0x8, 0x9
    messages = [(0, b"echo hi\n"), (4, b'{"Width":80,"Height":24}'), (255, b"\0")]
    for protocol in ("v5.channel.k8s.io", "v4.base64.channel.k8s.io"):
        b64 = "base64" in protocol
        wire = b"".join(
            _ws_frame(text, (str(channel % 10) + base64.b64encode(data).decode()).encode())
            if b64 else _ws_frame(binary, bytes([channel]) + data)
            for channel, data in messages)
        wire += _ws_frame(binary, b"\x00par", fin=False) + _ws_frame(continuation, b"tial")
        wire += _ws_frame(ping, b"ping") + _ws_frame(close, (1000).to_bytes(2, "big"))
        yield bytes([EXEC_PROTOCOLS.index(protocol)]) + wire


def cri() -> Iterable[bytes]:
    kinds: list[type[Message]] = [kind for kind, _ in CALLS]
    pod = json.loads((CHECKOUT / "manifests/examples/pod.json").read_text())
    container = json.loads((CHECKOUT / "manifests/examples/container.json").read_text())
    pod_config = json_format.ParseDict(pod, api_pb2.PodSandboxConfig())
    container_config = json_format.ParseDict(container, api_pb2.ContainerConfig())
    container_config.mounts.add(container_path="/data", host_path="/var/data", readonly=True,
                                propagation=api_pb2.MountPropagation.PROPAGATION_HOST_TO_CONTAINER)
    container_config.devices.add(container_path="/dev/fuse", host_path="/dev/fuse",
                                 permissions="rwm")
    container_config.envs.add(key="GREETING", value="hello")
    security = container_config.linux.security_context
    security.capabilities.add_capabilities.append("NET_ADMIN")
    security.seccomp.profile_type = api_pb2.SecurityProfile.ProfileType.RuntimeDefault
    security.run_as_user.value = 1000
    private = api_pb2.ContainerConfig()
    private.CopyFrom(container_config)
    private.mounts[0].propagation = api_pb2.MountPropagation.PROPAGATION_PRIVATE
    requests = [
        api_pb2.CreateContainerRequest(pod_sandbox_id="p" * 64, config=container_config,
                                       sandbox_config=pod_config),
        api_pb2.CreateContainerRequest(pod_sandbox_id="p" * 64, config=private,
                                       sandbox_config=pod_config),
        api_pb2.RunPodSandboxRequest(config=pod_config),
        api_pb2.UpdateContainerResourcesRequest(container_id="c" * 64,
                                                linux=container_config.linux.resources),
        api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image="busybox:1.36")),
    ]
    pod_config.port_mappings.add(protocol=api_pb2.Protocol.UDP, container_port=53,
                                 host_port=5353, host_ip="127.0.0.1")
    pod_config.annotations["kubernetes.io/ingress-bandwidth"] = "10M"
    pod_config.linux.sysctls["net.ipv4.ip_unprivileged_port_start"] = "0"
    requests.append(api_pb2.RunPodSandboxRequest(config=pod_config))
    for request in requests:
        yield bytes([kinds.index(type(request))]) + request.SerializeToString()


def passwd() -> Iterable[bytes]:
    # The spec tests' files: a comment, a broken line, group members.
    for user, name in (("alice", "bob"), ("1000:100", "alice"), ("1001:wheel", "root"), ("", "")):
        yield "\0".join((PASSWD, GROUP, user, name)).encode()


SEEDS = {"manifest": manifest, "reference": reference, "tar": tar, "registries": registries,
         "config": config, "cni": cni, "passwd": passwd, "spdy": spdy, "websocket": websocket,
         "cri": cri}


def main() -> None:
    for target, make in SEEDS.items():
        directory = HERE / "corpus" / target
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        for data in make():
            (directory / hashlib.sha1(data).hexdigest()).write_bytes(data)
        print(target, len(list(directory.iterdir())), "seeds")


if __name__ == "__main__":
    main()
