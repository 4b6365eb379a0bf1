"""Exec, attach and port-forward over SPDY/3.1 against real host processes."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import socket
import time
import uuid
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from crid.streaming.tokens import AttachRequest, ExecRequest, PortForwardRequest
from e2e.streaming import spdy_client
from e2e.streaming.conftest import ServerThread, loopback_server, wait_for_size

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coroutine, 60))


def exec_url(streaming: ServerThread, *cmd: str, **flags: bool) -> str:
    return streaming.url_for(ExecRequest("c1", cmd, **flags))


def test_exec_reports_output_and_exit_code_in_a_v4_status(streaming: ServerThread) -> None:
    url = exec_url(streaming, "sh", "-c", "echo out; echo err >&2; exit 3")
    result = run(spdy_client.remote_command(url))
    assert (result.stdout, result.stderr, result.protocol) == (b"out\n", b"err\n",
                                                               "v4.channel.k8s.io")
    assert result.status == {
        "metadata": {}, "status": "Failure",
        "message": "command terminated with non-zero exit code: error executing command "
                   "[sh -c echo out; echo err >&2; exit 3], exit code 3",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
    }
    assert result.exit_code == 3


def test_exec_success_status(streaming: ServerThread) -> None:
    result = run(spdy_client.remote_command(exec_url(streaming, "true")))
    assert result.status == {"metadata": {}, "status": "Success"}


@pytest.mark.parametrize("protocol", ["v3.channel.k8s.io", "v2.channel.k8s.io",
                                      "channel.k8s.io"])
def test_older_protocols_report_failure_as_text(streaming: ServerThread, protocol: str) -> None:
    url = exec_url(streaming, "sh", "-c", "echo hi; exit 5")
    result = run(spdy_client.remote_command(url, protocols=(protocol,)))
    assert result.protocol == protocol
    assert result.stdout == b"hi\n"
    assert result.error.startswith(b"command terminated with non-zero exit code")
    assert result.error.endswith(b"exit code 5")
    ok = run(spdy_client.remote_command(exec_url(streaming, "true"), protocols=(protocol,)))
    assert ok.error == b""


def test_negotiation_picks_the_clients_first_supported_protocol(
        streaming: ServerThread) -> None:
    url = exec_url(streaming, "true")
    result = run(spdy_client.remote_command(
        url, protocols=("v9.channel.k8s.io", "v2.channel.k8s.io", "v4.channel.k8s.io")))
    assert result.protocol == "v2.channel.k8s.io"


def test_unsupported_protocol_is_refused_with_the_list(streaming: ServerThread) -> None:
    url = exec_url(streaming, "true")
    with pytest.raises(spdy_client.UpgradeRefused) as refused:
        run(spdy_client.remote_command(url, protocols=("v9.channel.k8s.io",)))
    assert refused.value.status == 403
    assert "X-Accepted-Stream-Protocol-Versions: v4.channel.k8s.io" in refused.value.head


def test_stdin_reaches_the_process_and_its_close_is_eof(streaming: ServerThread) -> None:
    payload = os.urandom(300_000)
    url = exec_url(streaming, "cat", stdin=True, stderr=False)
    result = run(spdy_client.remote_command(url, stdin=payload))
    assert result.stdout == payload
    assert result.exit_code == 0


@pytest.mark.parametrize("flow_control", [True, False], ids=["windowed", "go-like"])
def test_ten_megabytes_of_output_arrive_intact(streaming: ServerThread,
                                               flow_control: bool) -> None:
    # the digest is of what the process wrote: it tees it to a file
    out = f"/tmp/crid-stream-{os.getpid()}-{flow_control}"
    url = exec_url(streaming, "sh", "-c",
                   f"head -c {10 << 20} /dev/urandom | tee {out}")
    try:
        result = run(spdy_client.remote_command(url, flow_control=flow_control))
        with open(out, "rb") as written:
            expected = hashlib.sha256(written.read()).hexdigest()
    finally:
        os.unlink(out)
    assert len(result.stdout) == 10 << 20
    assert hashlib.sha256(result.stdout).hexdigest() == expected
    assert result.exit_code == 0


def test_fifty_concurrent_execs_all_finish(streaming: ServerThread) -> None:
    urls = [exec_url(streaming, "sh", "-c", f"echo {i}; exit {i % 7}") for i in range(50)]

    async def all_of_them() -> list[spdy_client.ExecResult]:
        return await asyncio.gather(*(spdy_client.remote_command(u) for u in urls))

    results = run(all_of_them())
    assert [r.stdout for r in results] == [f"{i}\n".encode() for i in range(50)]
    assert [r.exit_code for r in results] == [i % 7 for i in range(50)]


def test_tty_resize_changes_the_size_seen_inside(streaming: ServerThread) -> None:
    # Sizes and stdin travel on different streams, so the shell gives the
    # resize up to 5 s to land before it reports the size it sees.
    url = exec_url(streaming, "sh", "-c", wait_for_size("43 132") + "; test -t 1 && echo is-a-tty",
                   tty=True, stdin=True, stderr=False)
    result = run(spdy_client.remote_command(url, stdin=b"go\n", close_stdin=False, tty=True,
                                            sizes=((100, 30), (132, 43))))
    lines = result.stdout.replace(b"\r\n", b"\n").split(b"\n")
    assert b"43 132" in lines
    assert b"is-a-tty" in lines
    assert result.exit_code == 0


def test_process_exiting_mid_stream_ends_it_with_its_code(streaming: ServerThread) -> None:
    url = exec_url(streaming, "sh", "-c", "echo started; exit 42", stdin=True)
    start = time.monotonic()
    result = run(spdy_client.remote_command(url, stdin=b"", close_stdin=False))
    assert result.stdout == b"started\n"
    assert result.exit_code == 42
    assert time.monotonic() - start < 10


def test_killed_process_reports_128_plus_signal(streaming: ServerThread) -> None:
    result = run(spdy_client.remote_command(exec_url(streaming, "sh", "-c", "kill -9 $$")))
    assert result.exit_code == 137


def test_missing_command_is_an_internal_error(streaming: ServerThread) -> None:
    result = run(spdy_client.remote_command(exec_url(streaming, "/nonexistent/binary")))
    assert result.status["status"] == "Failure"
    assert result.status["reason"] == "InternalError"
    assert "/nonexistent/binary" in str(result.status["message"])


def test_attach_sees_output_and_feeds_stdin(streaming: ServerThread) -> None:
    streaming.call(streaming.backend.start("attach-1", ["sh", "-c", "read x; echo got $x"]))
    url = streaming.url_for(AttachRequest("attach-1", stdin=True))
    result = run(spdy_client.remote_command(url, stdin=b"hello\n", close_stdin=False))
    assert result.stdout == b"got hello\n"
    assert result.status == {"metadata": {}, "status": "Success"}


# --- port-forward ---------------------------------------------------------


def test_port_forward_moves_100_megabytes(streaming: ServerThread, digest_server: int) -> None:
    payload = os.urandom(100 << 20)
    url = streaming.url_for(PortForwardRequest("pod-1", (digest_server,)))
    reply, problem = run(spdy_client.port_forward(url, digest_server, payload))
    assert problem == b""
    assert reply.decode() == hashlib.sha256(payload).hexdigest()


@pytest.fixture(scope="module")
def sending_server() -> Iterator[tuple[int, bytes]]:
    """A loopback TCP server that sends the same 20 MiB to each connection, then closes it."""
    payload = os.urandom(20 << 20)

    def send(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.sendall(payload)

    with loopback_server(send) as port:
        yield port, payload


@pytest.mark.parametrize("flow_control", [True, False], ids=["windows", "no-windows"])
def test_port_forward_brings_20_megabytes_back(streaming: ServerThread,
                                               sending_server: tuple[int, bytes],
                                               flow_control: bool) -> None:
    # From the pod to the client: crid holds to a flow-controlling client's
    # windows, and sends freely to one that grants no credit (kubectl).
    port, payload = sending_server
    url = streaming.url_for(PortForwardRequest("pod-1", (port,)))
    reply, problem = run(spdy_client.port_forward(url, port, b"", flow_control=flow_control))
    assert problem == b""
    assert (len(reply), hashlib.sha256(reply).hexdigest()) == (
        len(payload), hashlib.sha256(payload).hexdigest())


def test_port_forward_carries_several_connections(streaming: ServerThread,
                                                  digest_server: int) -> None:
    url = streaming.url_for(PortForwardRequest("pod-1", (digest_server,)))

    async def three() -> list[tuple[bytes, bytes]]:
        conn = await spdy_client.upgrade(url, ["portforward.k8s.io"])
        try:
            return await asyncio.gather(*(
                spdy_client.forward_one(conn.session, digest_server, bytes([i]) * 100_000, str(i))
                for i in range(3)))
        finally:
            await conn.close()

    results = run(three())
    assert [r[0].decode() for r in results] == [
        hashlib.sha256(bytes([i]) * 100_000).hexdigest() for i in range(3)]


def test_port_forward_to_a_closed_port_reports_on_the_error_stream(
        streaming: ServerThread) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    url = streaming.url_for(PortForwardRequest("pod-1", (port,)))
    reply, problem = run(spdy_client.port_forward(url, port, b""))
    assert reply == b""
    assert f"error forwarding port {port} to pod pod-1".encode() in problem


def test_json_status_is_what_go_decodes(streaming: ServerThread) -> None:
    # client-go decodes the error stream with encoding/json into metav1.Status:
    # field names must match its json tags exactly.
    result = run(spdy_client.remote_command(exec_url(streaming, "sh", "-c", "exit 1")))
    assert set(json.loads(result.error)) == {"metadata", "status", "message", "reason",
                                             "details"}


def processes_with(marker: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            if marker.encode() in cmdline.read():
                found.append(int(pid))
    return found


def test_client_leaving_mid_exec_stops_the_process(streaming: ServerThread) -> None:
    marker = f"crid-stream-{uuid.uuid4().hex}"
    url = exec_url(streaming, "sh", "-c", f"echo up; sleep 1000; : {marker}")

    async def start_and_leave() -> None:
        conn = await spdy_client.upgrade(url, ["v4.channel.k8s.io"])
        await conn.session.open_stream({"streamtype": ["error"]})
        stdout = await conn.session.open_stream({"streamtype": ["stdout"]})
        await conn.session.open_stream({"streamtype": ["stderr"]})
        assert await stdout.read() == b"up\n"
        assert processes_with(marker)
        conn.session._close()  # drop the connection, no goodbye
        conn.reading.cancel()

    run(start_and_leave())
    deadline = time.monotonic() + 10
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with(marker) == []
