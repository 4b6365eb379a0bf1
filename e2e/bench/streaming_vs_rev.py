"""The streaming server of this checkout against an earlier revision's, same run.

    python -P -m e2e.bench.streaming_vs_rev [--against REV] [--rounds N] [--megabytes N]

What a change to the streaming server (its framing, its limits) costs per
byte forwarded and per exec. Each revision's ``StreamingServer`` runs with
the host backend in a process of its own (the earlier one from a
``git archive`` laid out as a wheel installs it, first on ``PYTHONPATH``);
one client, our SPDY client without flow control as kubectl, alternates
between them round by round, each first in every other round: a
port-forward of MEGABYTES MiB to a discard server on loopback, then ten
``echo hi`` execs. The figures are the server
process's CPU seconds per forward (from ``/proc/PID/stat``), which load on
the machine disturbs less than wall time, the forward's MB/s and the median
exec round trip. ``--against`` defaults to ``HEAD`` (the uncommitted change).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from e2e.bench._revisions import export, installed_layout
from e2e.bench._revisions import parser as revisions_parser

TICKS = os.sysconf("SC_CLK_TCK")
EXECS = 10


async def serve() -> None:
    """The server side: a URL on stdout for each line on stdin (``pf`` or ``exec``)."""
    from crid.clock import Clock
    from crid.streaming.host_backend import HostBackend
    from crid.streaming.server import StreamingServer
    from crid.streaming.tokens import ExecRequest, PortForwardRequest

    server = StreamingServer(HostBackend(), Clock())
    await server.start()
    loop = asyncio.get_running_loop()
    lines = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(lines), sys.stdin)
    while line := await lines.readline():
        request = (PortForwardRequest("bench") if line.strip() == b"pf"
                   else ExecRequest("bench", ("/bin/echo", "hi")))
        print("URL " + server.url_for(request), flush=True)


class Server:
    def __init__(self, name: str, pythonpath: str) -> None:
        self.name = name
        env = dict(os.environ, PYTHONPATH=pythonpath) if pythonpath else None
        self.process = subprocess.Popen(
            [sys.executable, "-P", "-m", "e2e.bench.streaming_vs_rev", "--serve"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def url(self, kind: str) -> str:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(kind + "\n")
        self.process.stdin.flush()
        while not (line := self.process.stdout.readline()).startswith("URL "):
            assert line, f"the {self.name} server ended"
        return line[4:].strip()

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def discard_server() -> int:
    """A loopback TCP server that reads every connection to its end."""
    listener = socket.create_server(("127.0.0.1", 0))

    def drain(conn: socket.socket) -> None:
        with conn:
            while conn.recv(1 << 20):
                pass

    def accept() -> None:
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=drain, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return int(listener.getsockname()[1])


def sample(server: Server, port: int, payload: bytes) -> tuple[float, float, float]:
    """(server CPU s, MB/s) for one forward of ``payload``, and the median exec ms."""
    # The client is this checkout's; imported here, not at the top, since the
    # servers import this module too, with the other revision's crid first.
    from e2e.streaming import spdy_client

    before = server.cpu()
    started = time.perf_counter()
    _, problem = asyncio.run(spdy_client.port_forward(server.url("pf"), port, payload,
                                                      flow_control=False))
    taken = time.perf_counter() - started
    used = server.cpu() - before
    assert problem == b"", problem
    execs = []
    for _ in range(EXECS):
        url = server.url("exec")
        started = time.perf_counter()
        result = asyncio.run(spdy_client.remote_command(url, flow_control=False))
        execs.append((time.perf_counter() - started) * 1000)
        assert (result.stdout, result.exit_code) == (b"hi\n", 0), result
    return used, len(payload) / 1e6 / taken, statistics.median(execs)


def main(argv: list[str] | None = None) -> int:
    parser = revisions_parser("e2e.bench.streaming_vs_rev", __doc__ or "", 10, "rounds",
                              megabytes=(300, "MiB per forward"))
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(serve())
        return 0
    payload = bytes(range(256)) * 4096 * args.megabytes
    with tempfile.TemporaryDirectory(prefix="crid-stream-bench-") as tmp:
        tree = installed_layout(export(args.against, Path(tmp) / "exported"),
                                Path(tmp) / "against")
        servers = [Server("checkout", ""), Server(args.against, str(tree))]
        port = discard_server()
        found: dict[str, list[tuple[float, float, float]]] = {s.name: [] for s in servers}
        try:
            for index in range(args.rounds + 1):  # the first round warms up
                # Each goes first in every other round: no order favours either.
                for server in servers if index % 2 else servers[::-1]:
                    figures = sample(server, port, payload)
                    if index:
                        found[server.name].append(figures)
        finally:
            for server in servers:
                server.stop()
    print(f"Streaming server, {args.rounds} rounds, {args.megabytes} MiB forwards "
          "(medians; all CPU figures in brackets)")
    for name, rows in found.items():
        cpu, rate, execs = (list(column) for column in zip(*rows, strict=True))
        print(f"{name:>12}: server CPU per forward {statistics.median(cpu):.3f} s "
              f"[{', '.join(f'{c:.2f}' for c in cpu)}], {statistics.median(rate):.0f} MB/s, "
              f"exec echo {statistics.median(execs):.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
