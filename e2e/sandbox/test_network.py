"""Pod networking end to end: addresses, pod-to-pod, host ports, host network, dialing."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import random
import socket
import threading

from cri_api.v1 import api_pb2
from crid.network import dial, namespaces

from crid.streaming.reader import open_connection
from e2e.fixtures.daemon import CridDaemon
from e2e.sandbox.pods import (
    PodNet,
    info,
    namespace_options,
    nsenter,
    pod_config,
    run_pod,
    stop_remove,
)


def listen_in(netns: str, host: str = "0.0.0.0") -> tuple[socket.socket, int]:
    """A listening socket created inside ``netns`` (it stays there)."""

    def make() -> socket.socket:
        sock = socket.socket()
        sock.bind((host, 0))
        sock.listen(4)
        return sock

    sock = namespaces.run_inside({"net": netns}, make)
    return sock, sock.getsockname()[1]


def serve_once(sock: socket.socket, reply: bytes) -> threading.Thread:
    def body() -> None:
        conn, _ = sock.accept()
        with conn:
            conn.sendall(reply)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread


def test_pod_gets_an_ip_from_cni_and_reports_it(daemon: CridDaemon, net: PodNet) -> None:
    pod = run_pod(daemon, pod_config())
    try:
        found = info(daemon, pod)
        ip = found["status"].network.ip
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(net.subnet)
        assert found["status"].state == api_pb2.SANDBOX_READY
        # The address is really on the pod's eth0, and lo is up.
        assert f"inet {ip}/24" in nsenter({"net": found["netns"]}, "ip", "-o", "addr", "show",
                                          "eth0")
        assert "UP" in nsenter({"net": found["netns"]}, "ip", "-o", "link", "show", "lo")
    finally:
        stop_remove(daemon, pod)


def test_two_pods_reach_each_other(daemon: CridDaemon) -> None:
    a, b = run_pod(daemon, pod_config()), run_pod(daemon, pod_config())
    try:
        info_a, info_b = info(daemon, a), info(daemon, b)
        listener, port = listen_in(info_b["netns"])
        with listener:
            server = serve_once(listener, b"hello from b")
            ip_b = info_b["status"].network.ip
            with dial.dial(info_a["netns"], port, host=ip_b) as conn:
                assert conn.recv(100) == b"hello from b"
            server.join(5)
    finally:
        stop_remove(daemon, a)
        stop_remove(daemon, b)


def test_host_port_answers_on_loopback(daemon: CridDaemon) -> None:
    host_port = random.randint(20000, 40000)
    pod = run_pod(daemon, pod_config(port_mappings=[api_pb2.PortMapping(
        protocol=api_pb2.TCP, container_port=8080, host_port=host_port, host_ip="127.0.0.1")]))
    try:
        netns = info(daemon, pod)["netns"]

        def make() -> socket.socket:
            sock = socket.socket()
            sock.bind(("0.0.0.0", 8080))
            sock.listen(1)
            return sock

        listener = namespaces.run_inside({"net": netns}, make)
        with listener:
            server = serve_once(listener, b"via hostPort")
            with socket.create_connection(("127.0.0.1", host_port), timeout=5) as conn:
                assert conn.recv(100) == b"via hostPort"
            server.join(5)
    finally:
        stop_remove(daemon, pod)


def test_host_network_pod_uses_the_hosts_namespace(daemon: CridDaemon) -> None:
    config = pod_config(linux=namespace_options(network=api_pb2.NODE, pid=api_pb2.POD))
    pod = run_pod(daemon, config)
    try:
        found = info(daemon, pod)
        assert found["netns"] == ""
        assert found["status"].network.ip == ""
        infra = found["pid"]
        assert os.readlink(f"/proc/{infra}/ns/net") == os.readlink("/proc/self/ns/net")
        host_links = {line.split(":")[1].strip().split("@")[0]
                      for line in nsenter({}, "ip", "-o", "link").splitlines()}
        pod_links = {line.split(":")[1].strip().split("@")[0] for line in
                     nsenter({"net": f"/proc/{infra}/ns/net"}, "ip", "-o", "link").splitlines()}
        assert pod_links == host_links
    finally:
        stop_remove(daemon, pod)


def test_dial_reaches_localhost_inside_the_pod(daemon: CridDaemon) -> None:
    pod = run_pod(daemon, pod_config())
    try:
        netns = info(daemon, pod)["netns"]
        listener, port = listen_in(netns, "127.0.0.1")
        with listener:
            server = serve_once(listener, b"port-forward")
            with dial.dial(netns, port) as conn:
                assert conn.recv(100) == b"port-forward"
            server.join(5)
            server = serve_once(listener, b"as streams")

            async def read() -> bytes:
                dialer = dial.Dialer()
                try:
                    reader, writer = await open_connection(sock=await dialer.connect(netns, port))
                finally:
                    dialer.close()
                data = await reader.read(100)
                writer.close()
                return data

            assert asyncio.run(read()) == b"as streams"
            server.join(5)
        # The host's loopback is another namespace: nothing listens there on that port.
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0
    finally:
        stop_remove(daemon, pod)
