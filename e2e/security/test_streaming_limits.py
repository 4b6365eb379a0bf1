"""The streaming server's limits hold against real attacks (issue 15, item 2).

One daemon, two pods: the attacker's and a victim's. Each test attacks the
streaming server over a real socket, and asserts that the attacker is cut
off, that a second CRI client's ListPodSandbox answers within a second
throughout, that an exec into the victim's pod works during the attack, and
that the daemon's peak RSS grows by a bounded amount. The daemon runs with
2 s handshake and stream-creation timeouts and a 3 s idle timeout, so they
can be waited for; the size and count limits are the defaults.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import struct
import subprocess
import threading
import time
import urllib.parse
import uuid
import zlib
from collections.abc import Iterator

import pytest
from cri_api.v1 import api_pb2
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection

from crid.config import Config
from crid.streaming.spdy import frames
from crid.streaming.spdy.dictionary import DICTIONARY
from e2e.containers.helpers import exec_sync, run
from e2e.fixtures.daemon import CridDaemon
from e2e.fixtures.images import RunConfig, busybox_image, push
from e2e.fixtures.pressure import Pressure
from e2e.fixtures.registry import Registry
from e2e.sandbox.pods import info, pod_config, pod_daemon, stop_remove
from e2e.security.raw_streaming import SpdyPeer, websocket_upgrade
from e2e.streaming import spdy_client

# Seconds, for this daemon. Idle is longer than creation: a session whose
# streams are late must meet the creation timeout, not the idle one.
TIMEOUT = 2  # handshake and stream creation
IDLE = 3
LIMITS = (f"[crid.streaming]\nhandshake_timeout = {TIMEOUT}\n"
          f"stream_idle_timeout = {IDLE}\nstream_creation_timeout = {TIMEOUT}\n")
MIB = 1024 * 1024
MAX_RSS_GROWTH = 64 * MIB
VICTIM_EXEC_BOUND = 5.0  # seconds an exec into the other pod may take during an attack
VICTIM_PORT = 7072
BLACK_HOLE_PORT = 7071  # SYNs to it are dropped inside the attacker's pod


@dataclasses.dataclass
class Pod:
    id: str
    container: str


@dataclasses.dataclass
class Node:
    daemon: CridDaemon
    attacker: Pod
    victim: Pod

    @property
    def pid(self) -> int:
        assert self.daemon.process is not None
        return self.daemon.process.pid

    def pressure(self) -> Pressure:
        return Pressure(self.pid, self.daemon.socket)

    def exec_url(self, pod: Pod, *cmd: str, stdin: bool = False) -> str:
        url: str = self.daemon.runtime.Exec(api_pb2.ExecRequest(
            container_id=pod.container, cmd=list(cmd), stdin=stdin, stdout=True,
            stderr=True)).url
        return url

    def port_forward_url(self, pod: Pod) -> str:
        url: str = self.daemon.runtime.PortForward(api_pb2.PortForwardRequest(
            pod_sandbox_id=pod.id)).url
        return url

    def victim_exec_works(self) -> float:
        """Exec ``echo`` in the victim's pod over SPDY; how long it took."""
        word = uuid.uuid4().hex
        started = time.monotonic()
        result = asyncio.run(asyncio.wait_for(spdy_client.remote_command(
            self.exec_url(self.victim, "/bin/echo", word), flow_control=False), 30))
        taken = time.monotonic() - started
        assert (result.stdout, result.exit_code) == (f"{word}\n".encode(), 0)
        assert taken < VICTIM_EXEC_BOUND, f"an exec into another pod took {taken:.1f} s"
        return taken

    def victim_port_forward_works(self) -> float:
        """Port-forward to the victim's pod; how long it took."""
        deadline = time.monotonic() + 10
        while True:  # nc is restarted after each connection: it may not listen yet
            started = time.monotonic()
            reply, problem = asyncio.run(asyncio.wait_for(spdy_client.port_forward(
                self.port_forward_url(self.victim), VICTIM_PORT, b"ping\n",
                flow_control=False), 30))
            taken = time.monotonic() - started
            if reply or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert (reply, problem) == (b"pong\n", b"")
        assert taken < VICTIM_EXEC_BOUND, f"a port-forward to another pod took {taken:.1f} s"
        return taken


@pytest.fixture(scope="module")
def node(registry: Registry) -> Iterator[Node]:
    image = push(registry, "e2e/busybox", "1", busybox_image(
        config=RunConfig(cmd=("/bin/sh",), env=("PATH=/bin",)))).reference
    with pod_daemon(LIMITS) as (daemon, _):
        daemon.image.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=image)))
        pods = []
        # The victim's pod answers "pong" on VICTIM_PORT, one connection at a time.
        serve = f"while true; do echo pong | nc -l -p {VICTIM_PORT}; done"
        for command in (["/bin/sleep", "600"], ["/bin/sh", "-c", serve]):
            config = pod_config()
            pod_id = daemon.runtime.RunPodSandbox(
                api_pb2.RunPodSandboxRequest(config=config)).pod_sandbox_id
            pods.append(Pod(pod_id, run(daemon, pod_id, config, image, command=command)))
        try:
            yield Node(daemon, *pods)
        finally:
            for pod in pods:
                stop_remove(daemon, pod.id)


def goaway_statuses(peer: SpdyPeer) -> list[int]:
    return [frame.status for frame in peer.of(frames.GoAway)
            if isinstance(frame, frames.GoAway)]


def bomb(inflated: int) -> bytes:
    """A header block, deflated with SPDY's dictionary, that inflates to ``inflated`` bytes."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, DICTIONARY)
    parts = [deflate.compress(struct.pack("!II", 1, 1) + b"x" + struct.pack("!I", inflated))]
    zeros = bytes(MIB)
    for _ in range(inflated // MIB):
        parts.append(deflate.compress(zeros))
    parts.append(deflate.flush(zlib.Z_SYNC_FLUSH))
    return b"".join(parts)


def syn_stream(stream_id: int, block: bytes) -> bytes:
    payload = struct.pack("!IIBB", stream_id, 0, 0, 0) + block
    return struct.pack("!HHI", 0x8000 | frames.VERSION, frames.TYPE_SYN_STREAM,
                       len(payload)) + payload


def test_a_header_compression_bomb_closes_the_connection(node: Node) -> None:
    block = bomb(256 * MIB)
    assert len(block) < frames.MAX_FRAME  # it passes the frame-size check: inflation is capped
    with node.pressure() as pressure:
        peer = SpdyPeer(node.exec_url(node.attacker, "/bin/true"), "v4.channel.k8s.io")
        peer.start_reading()
        peer.send_raw(syn_stream(1, block))
        assert peer.wait_ended(10), "the server kept a connection that sent a header bomb"
        node.victim_exec_works()
        peer.close()
    assert goaway_statuses(peer) == [frames.GOAWAY_PROTOCOL_ERROR]
    assert not peer.of(frames.SynReply)
    # Inflating all of it would have cost 256 MiB.
    pressure.assert_served(MAX_RSS_GROWTH)
    assert "header block inflates to more than 1048576 bytes" in node.daemon.stderr_text()


def test_a_frame_larger_than_the_cap_closes_the_connection_unread(node: Node) -> None:
    with node.pressure() as pressure:
        peer = SpdyPeer(node.exec_url(node.attacker, "/bin/true"), "v4.channel.k8s.io")
        peer.start_reading()
        # A DATA frame header announcing 16 MiB, then nothing: the server must
        # not wait for (or make room for) the payload.
        peer.send_raw(struct.pack("!II", 1, frames.MAX_LENGTH))
        assert peer.wait_ended(10)
        node.victim_exec_works()
        peer.close()
    assert goaway_statuses(peer) == [frames.GOAWAY_PROTOCOL_ERROR]
    pressure.assert_served(MAX_RSS_GROWTH)


def test_ten_thousand_streams_are_refused_then_cut_off(node: Node) -> None:
    cap = Config.stream_max_streams_per_connection
    with node.pressure() as pressure:
        peer = SpdyPeer(node.port_forward_url(node.attacker), "portforward.k8s.io")
        peer.start_reading()
        # Port-forward pairs to a port where nothing listens: each stream is
        # answered and kept until the client ends it, which this one never does.
        opened = [peer.encode(frames.SynStream(2 * i + 1, {
            "streamtype": ["error" if i % 2 == 0 else "data"], "port": ["7070"],
            "requestid": [str(i // 2)]})) for i in range(10_000)]
        sending = threading.Thread(target=lambda: peer.send_raw(b"".join(opened)), daemon=True)
        sending.start()
        node.victim_exec_works()
        assert peer.wait_ended(30), "a client opening 10,000 streams was not cut off"
        sending.join(30)
        peer.close()
    replies = len(peer.of(frames.SynReply))
    refused = [f for f in peer.of(frames.RstStream)
               if isinstance(f, frames.RstStream) and f.status == frames.REFUSED_STREAM]
    assert replies <= cap
    assert len(refused) >= 1
    assert replies + len(peer.of(frames.RstStream)) < 10_000  # cut off before the end
    assert goaway_statuses(peer) == [frames.GOAWAY_PROTOCOL_ERROR]
    pressure.assert_served(MAX_RSS_GROWTH)


def test_a_client_that_never_reads_is_cut_off_at_the_idle_timeout(node: Node) -> None:
    marker = uuid.uuid4().hex
    with node.pressure() as pressure:
        peer = SpdyPeer(node.exec_url(node.attacker, "/bin/yes", marker), "v4.channel.k8s.io")
        peer.send_raw(peer.encode(
            frames.SynStream(1, {"streamtype": ["error"]}, fin=True),
            frames.SynStream(3, {"streamtype": ["stdout"]}, fin=True),
            frames.SynStream(5, {"streamtype": ["stderr"]}, fin=True)))
        # The process runs and writes without end; this client reads nothing.
        assert running(node, marker), "the attacker's exec never started"
        node.victim_exec_works()
        time.sleep(IDLE + 2)
        # Only now read: what the kernel buffered, then the end of the connection.
        # Had the server kept the session, ``yes`` would keep this reading for ever.
        peer.start_reading()
        assert peer.wait_ended(5), "a client that never reads was not cut off"
        peer.close()
    # The session's process was stopped with it.
    deadline = time.monotonic() + 10
    while marker in exec_sync(node.daemon, node.attacker.container, "/bin/ps").stdout.decode():
        assert time.monotonic() < deadline, "the exec outlived its cut-off session"
        time.sleep(0.2)
    pressure.assert_served(MAX_RSS_GROWTH)
    assert "streaming session idle; closing it" in node.daemon.stderr_text()


def running(node: Node, marker: str, within: float = 10.0) -> bool:
    """Whether a process with ``marker`` in its command line runs in the attacker's container."""
    deadline = time.monotonic() + within
    while marker not in exec_sync(node.daemon, node.attacker.container, "/bin/ps").stdout.decode():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_slowloris_handshakes_are_cut_off(node: Node) -> None:
    cap = Config.stream_max_handshakes
    url = urllib.parse.urlsplit(node.exec_url(node.victim, "/bin/true"))
    assert url.hostname is not None and url.port is not None
    attackers: list[socket.socket] = []
    with node.pressure() as pressure:
        started = time.monotonic()
        for _ in range(2 * cap + 44):
            sock = socket.create_connection((url.hostname, url.port))
            sock.sendall(b"POST /exec/")
            attackers.append(sock)
        time.sleep(0.5)
        # One byte each in turn, never a whole request head.
        for sock in attackers:
            with contextlib.suppress(OSError):
                sock.send(b"x")
        closed_early = sum(ended(sock) for sock in attackers)
        node.victim_exec_works()  # its handshake needs a slot: the oldest attacker's goes
        while time.monotonic() - started < TIMEOUT + 3:
            for sock in attackers:
                with contextlib.suppress(OSError):
                    sock.send(b"x")
            time.sleep(0.3)
        closed_late = sum(ended(sock) for sock in attackers)
        for sock in attackers:
            sock.close()
    assert closed_early >= len(attackers) - cap, (
        f"only {closed_early} of {len(attackers)} handshakes closed past the cap of {cap}")
    assert closed_late == len(attackers), "slow handshakes outlived the handshake timeout"
    pressure.assert_served(MAX_RSS_GROWTH)


def ended(sock: socket.socket) -> bool:
    """Whether the server has closed ``sock`` (without waiting)."""
    try:
        return sock.recv(4096, socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


def test_a_websocket_message_over_the_cap_closes_the_connection(node: Node) -> None:
    cap = Config.stream_websocket_max_message
    url = node.exec_url(node.attacker, "/bin/cat", stdin=True)
    with node.pressure() as pressure:
        sock = websocket_upgrade(url, "v4.channel.k8s.io")
        ws = Connection(ConnectionType.CLIENT)
        chunk = bytes(MIB)
        sent = 0
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(ws.send(BytesMessage(data=b"\0" + chunk, message_finished=False)))
            sent += MIB
            while sent < 2 * cap:  # one message, never finished
                sock.sendall(ws.send(BytesMessage(data=chunk, message_finished=False)))
                sent += MIB
        node.victim_exec_works()
        sock.settimeout(10)
        codes = []
        with contextlib.suppress(ConnectionResetError):
            while data := sock.recv(65536):
                ws.receive_data(data)
                codes += [e.code for e in ws.events() if isinstance(e, CloseConnection)]
        sock.close()
    assert sent < 2 * cap, "the server read twice its message cap without closing"
    assert codes == [1009]
    pressure.assert_served(MAX_RSS_GROWTH)


def test_port_forwards_to_a_black_hole_hold_no_threads_and_stop_at_the_pods_cap(
        node: Node) -> None:
    cap = Config.stream_max_port_forwards_per_pod
    netns = info(node.daemon, node.attacker.id)["netns"]
    subprocess.run(["nsenter", f"--net={netns}", "iptables", "-I", "INPUT", "-p", "tcp",
                    "--dport", str(BLACK_HOLE_PORT), "-j", "DROP"], check=True, timeout=30)
    pairs = 100  # per connection; two connections: more than one pod may have
    with node.pressure() as pressure:
        peers = [SpdyPeer(node.port_forward_url(node.attacker), "portforward.k8s.io")
                 for _ in range(2)]
        for peer in peers:
            peer.start_reading()
            peer.send_raw(peer.encode(*(
                frames.SynStream(2 * i + 1, {
                    "streamtype": ["error" if i % 2 == 0 else "data"],
                    "port": [str(BLACK_HOLE_PORT)], "requestid": [str(i // 2)]})
                for i in range(2 * pairs))))
        # Every dial the cap lets through now waits for a SYN-ACK that never comes.
        time.sleep(1)
        node.victim_port_forward_works()
        node.victim_exec_works()
        for peer in peers:
            peer.close()
    errors = [peer.data_on(4 * i + 1).decode() for peer in peers for i in range(pairs)]
    refused = [e for e in errors if "max_port_forwards_per_pod" in e]
    assert len(refused) == 2 * pairs - cap
    pressure.assert_served(MAX_RSS_GROWTH)


def test_a_pair_that_never_completes_is_dropped_at_the_creation_timeout(node: Node) -> None:
    with node.pressure() as pressure:
        peer = SpdyPeer(node.port_forward_url(node.attacker), "portforward.k8s.io")
        peer.start_reading()
        halves = [2 * i + 1 for i in range(50)]
        peer.send_raw(peer.encode(*(frames.SynStream(stream_id, {
            "streamtype": ["error"], "port": ["7070"], "requestid": [str(stream_id)]})
            for stream_id in halves)))
        time.sleep(TIMEOUT + 1)
        node.victim_exec_works()
        reset = {f.stream_id for f in peer.of(frames.RstStream) if isinstance(f, frames.RstStream)}
        messages = {peer.data_on(stream_id) for stream_id in halves}
        peer.close()
    assert reset == set(halves)
    assert messages == {b"timed out waiting for the other stream of the pair"}
    pressure.assert_served(MAX_RSS_GROWTH)


def test_a_session_whose_streams_never_come_ends_at_the_creation_timeout(node: Node) -> None:
    marker = uuid.uuid4().hex
    peer = SpdyPeer(node.exec_url(node.attacker, "/bin/echo", marker), "v4.channel.k8s.io")
    started = time.monotonic()
    peer.start_reading()
    # Only the error stream: stdout (asked for) never comes.
    peer.send_raw(peer.encode(frames.SynStream(1, {"streamtype": ["error"]}, fin=True)))
    assert peer.wait_ended(TIMEOUT + 10), "a session missing its streams was kept"
    peer.close()
    assert TIMEOUT - 0.5 < peer.ended_at - started < TIMEOUT + 10
    assert peer.data_on(1) == b""  # the command never ran


def test_an_idle_websocket_session_is_closed_at_the_idle_timeout(node: Node) -> None:
    url = node.exec_url(node.attacker, "/bin/sleep", "600", stdin=True)
    sock = websocket_upgrade(url, "v4.channel.k8s.io")
    started = time.monotonic()
    sock.settimeout(IDLE + 10)
    with contextlib.suppress(ConnectionResetError):
        while sock.recv(65536):  # the "ready" message, then nothing until the end
            pass
    ended = time.monotonic() - started
    sock.close()
    assert IDLE - 0.5 < ended < IDLE + 10
