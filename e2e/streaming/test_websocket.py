"""Exec and port-forward over WebSocket, driven by an independent client.

The client is the ``kubernetes`` package's ``WSClient`` (it offers
``v5.channel.k8s.io`` and ``v4.channel.k8s.io``) and its ``PortForward``;
neither shares code with the server.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from kubernetes.client import Configuration
from kubernetes.stream.ws_client import (
    PortForward,
    WSClient,
    create_websocket,
    get_websocket_url,
)

from crid.streaming.tokens import AttachRequest, ExecRequest, PortForwardRequest
from e2e.streaming.conftest import ServerThread, wait_for_size


def client(url: str, protocol: str | None = None) -> WSClient:
    headers = {"sec-websocket-protocol": protocol} if protocol else {}
    return WSClient(Configuration(), get_websocket_url(url), headers, capture_all=True,
                    binary=True)


def finish(ws: WSClient) -> WSClient:
    ws.run_forever(timeout=30)
    assert not ws.is_open(), "the server did not end the session"
    return ws


def test_exec_without_tty(streaming: ServerThread) -> None:
    url = streaming.url_for(ExecRequest("c1", ("sh", "-c", "echo out; echo err >&2; exit 4")))
    ws = finish(client(url))
    assert ws.subprotocol == "v5.channel.k8s.io"
    assert (ws.read_stdout(), ws.read_stderr()) == (b"out\n", b"err\n")
    assert ws.returncode == 4


def test_exec_success_on_v4(streaming: ServerThread) -> None:
    url = streaming.url_for(ExecRequest("c1", ("echo", "fine")))
    ws = finish(client(url, "v4.channel.k8s.io"))
    assert ws.subprotocol == "v4.channel.k8s.io"
    assert ws.read_stdout() == b"fine\n"
    assert ws.returncode == 0


def test_exec_with_stdin(streaming: ServerThread) -> None:
    url = streaming.url_for(ExecRequest("c1", ("sh", "-c", "read a; read b; echo $b $a"),
                                        stdin=True))
    ws = client(url)
    ws.write_stdin(b"one\n")
    ws.write_stdin(b"two\n")
    finish(ws)
    assert ws.read_stdout() == b"two one\n"
    assert ws.returncode == 0


def test_v5_close_signal_is_stdin_eof(streaming: ServerThread) -> None:
    payload = os.urandom(200_000)
    url = streaming.url_for(ExecRequest("c1", ("sha256sum",), stdin=True))
    ws = client(url)
    ws.write_stdin(payload)
    ws.close_channel(0)
    finish(ws)
    assert ws.read_stdout().split()[0].decode() == hashlib.sha256(payload).hexdigest()


def test_exec_with_tty_and_resize(streaming: ServerThread) -> None:
    url = streaming.url_for(ExecRequest(
        "c1", ("sh", "-c", wait_for_size("17 91") + "; test -t 0 && echo tty; exit 2"),
        tty=True, stdin=True, stderr=False))
    ws = client(url, "v4.channel.k8s.io")
    ws.write_channel(4, b'{"Width":91,"Height":17}')
    ws.write_stdin(b"go\n")
    finish(ws)
    out = ws.read_stdout().replace(b"\r\n", b"\n").split(b"\n")
    assert b"17 91" in out
    assert b"tty" in out
    assert ws.returncode == 2


def test_ten_megabytes_of_output(streaming: ServerThread) -> None:
    size = 10 << 20
    url = streaming.url_for(ExecRequest(
        "c1", ("sh", "-c", f"head -c {size} /dev/zero | tr '\\0' x; echo; echo done >&2")))
    ws = finish(client(url))
    out = ws.read_stdout()
    assert len(out) == size + 1
    assert out == b"x" * size + b"\n"
    assert ws.read_stderr() == b"done\n"


def test_process_exiting_mid_stream(streaming: ServerThread) -> None:
    url = streaming.url_for(ExecRequest("c1", ("sh", "-c", "echo bye; exit 9"), stdin=True))
    ws = client(url)
    ws.write_stdin(b"ignored\n")  # stdin stays open; the process leaves anyway
    start = time.monotonic()
    finish(ws)
    assert ws.read_stdout() == b"bye\n"
    assert ws.returncode == 9
    assert time.monotonic() - start < 10


def test_base64_protocol(streaming: ServerThread) -> None:
    url = streaming.url_for(ExecRequest("c1", ("printf", "\\001\\377")))
    ws = create_websocket(Configuration(), get_websocket_url(url),
                          {"sec-websocket-protocol": "base64.channel.k8s.io"})
    messages = []
    while True:
        opcode, frame = ws.recv_data_frame(True)
        if opcode == 8:  # close
            break
        messages.append(frame.data)
    ws.close()
    assert b"1Af8=" in messages  # stdout (channel '1'), base64 of 0x01 0xff


@pytest.mark.parametrize("mutation", ["unknown", "reused", "expired", "wrong-kind"])
def test_bad_tokens_get_404(streaming: ServerThread, mutation: str) -> None:
    url = streaming.url_for(ExecRequest("c1", ("true",)))
    if mutation == "unknown":
        url = url.rsplit("/", 1)[0] + "/AAAAAAAAAAAAAAAAAAAAAAAA"
    elif mutation == "reused":
        finish(client(url))
    elif mutation == "expired":
        streaming.clock.offset += 61
    elif mutation == "wrong-kind":
        url = url.replace("/exec/", "/attach/")
    response = httpx.get(url, headers={"Connection": "Upgrade", "Upgrade": "websocket",
                                       "Sec-WebSocket-Version": "13",
                                       "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert response.status_code == 404


def test_good_token_without_upgrade_is_a_bad_request(streaming: ServerThread) -> None:
    response = httpx.get(streaming.url_for(ExecRequest("c1", ("true",))))
    assert response.status_code == 400


@pytest.fixture
def echo_server() -> Iterator[int]:
    """A loopback TCP server that echoes each connection's bytes, upper-cased."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with listener:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                while chunk := conn.recv(65536):
                    conn.sendall(chunk.upper())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    listener.close()
    thread.join(timeout=5)


def test_port_forward(streaming: ServerThread, echo_server: int) -> None:
    url = streaming.url_for(PortForwardRequest("pod-1", (echo_server,)))
    ws = create_websocket(Configuration(), get_websocket_url(url, [("ports", str(echo_server))]),
                          {"sec-websocket-protocol": "v4.channel.k8s.io"})
    forward = PortForward(ws, [echo_server])
    sock = forward.socket(echo_server)
    sock.settimeout(10)
    payload = os.urandom(1 << 20).hex().encode()[: 1 << 20]
    sock.sendall(payload)
    received = b""
    while len(received) < len(payload):
        received += sock.recv(1 << 20)
    assert received == payload.upper()
    assert forward.error(echo_server) is None
    sock.close()


def test_attach_over_websocket(streaming: ServerThread) -> None:
    streaming.call(streaming.backend.start("attach-ws", ["sh", "-c", "read x; echo got $x >&2"]))
    ws = client(streaming.url_for(AttachRequest("attach-ws", stdin=True)))
    ws.write_stdin(b"hi\n")
    finish(ws)
    assert ws.read_stderr() == b"got hi\n"
    assert ws.returncode == 0
