"""Benchmark: exec round trip and port-forward throughput over SPDY, crid vs containerd.

``python -m e2e.bench.streaming`` (root; Debian's containerd installed, as
``make bench`` does). Each runtime has one pod with a busybox container that
runs a discard server (``nc -l -p PORT > /dev/null``, restarted after each
connection). The same Python client (our SPDY client, without client-side
flow control, as kubectl) drives both, alternating between them sample by
sample so both see the same load on the machine:

- exec round trip: the CRI ``Exec`` call, the SPDY upgrade, ``echo hi``'s
  output and its exit status, then the connection closed;
- port-forward: ``PortForward`` + upgrade + MEGABYTES MiB sent to the
  discard server, until the pod's end closes the forwarded connection.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Callable

from cri_api.v1 import api_pb2

from e2e.bench import _command as command
from e2e.fixtures.registry import Registry
from e2e.streaming import spdy_client
from e2e.streaming.runtimes import Target, crid_and_containerd

PORT = 7070
WARMUP = 3
CHUNK = bytes(range(256)) * 4096  # 1 MiB


def exec_round_trip(target: Target) -> float:
    """ms for one ``echo hi``, URL to exit status."""
    started = time.perf_counter()
    result = asyncio.run(spdy_client.remote_command(target.exec_url("/bin/echo", "hi"),
                                                    flow_control=False))
    taken = (time.perf_counter() - started) * 1000
    assert (result.stdout, result.exit_code) == (b"hi\n", 0), result
    return taken


def listening(target: Target, port: int) -> bool:
    """Whether something in the pod listens on ``port`` (from /proc/net/tcp*)."""
    table = target.runtime.ExecSync(api_pb2.ExecSyncRequest(
        container_id=target.container_id, cmd=["/bin/cat", "/proc/net/tcp", "/proc/net/tcp6"],
        timeout=10)).stdout.decode()
    # local address, remote address, state 0A (LISTEN)
    return any(len(f := line.split()) > 3 and f[1].endswith(f":{port:04X}") and f[3] == "0A"
               for line in table.splitlines())


def forward_throughput(target: Target, payload: bytes) -> float:
    """MB/s for ``payload`` through a port-forward to the discard server."""
    # The server restarts after each connection; a connection refused leaves
    # containerd's end unread and the sender stuck, so wait until it listens.
    deadline = time.monotonic() + 10
    while not listening(target, PORT):
        assert time.monotonic() < deadline, f"nothing listens on {PORT} in {target.name}'s pod"
        time.sleep(0.02)
    started = time.perf_counter()
    _, problem = asyncio.run(spdy_client.port_forward(
        target.port_forward_url(PORT), PORT, payload, flow_control=False))
    taken = time.perf_counter() - started
    assert problem == b"", problem
    return len(payload) / 1e6 / taken


def interleaved(targets: tuple[Target, Target], sample: Callable[[Target], float],
                count: int, warmup: int) -> tuple[list[float], list[float]]:
    found: tuple[list[float], list[float]] = ([], [])
    for index in range(warmup + count):
        for target, taken in zip(targets, found, strict=True):
            value = sample(target)
            if index >= warmup:
                taken.append(value)
    return found


def run(execs: int, forwards: int, megabytes: int, crid_handler: str = "",
        report: Callable[[str], None] = print) -> dict[str, float]:
    payload = CHUNK * megabytes
    server = f"while true; do nc -l -p {PORT} > /dev/null; done"
    with Registry() as registry, crid_and_containerd(registry, ["/bin/sh", "-c", server],
                                                     crid_handler) as targets:
        crid_ms, ctrd_ms = interleaved(targets, exec_round_trip, execs, WARMUP)
        crid_mbs, ctrd_mbs = interleaved(
            targets, lambda t: forward_throughput(t, payload), forwards, 1)
    figures = {
        "crid_exec_ms": statistics.median(crid_ms),
        "containerd_exec_ms": statistics.median(ctrd_ms),
        "crid_forward_mb_s": statistics.median(crid_mbs),
        "containerd_forward_mb_s": statistics.median(ctrd_mbs),
    }
    figures["exec_ratio"] = figures["crid_exec_ms"] / figures["containerd_exec_ms"]
    figures["forward_ratio"] = figures["crid_forward_mb_s"] / figures["containerd_forward_mb_s"]
    handler = crid_handler or "default"
    report(f"Streaming over SPDY, crid (runtime handler {handler}) vs containerd (runc)")
    report(f"{'':42}{'crid':>10}{'containerd':>12}{'ratio':>8}{'target':>8}")
    report(f"{f'exec echo hi, median of {execs} (ms)':42}{figures['crid_exec_ms']:10.1f}"
           f"{figures['containerd_exec_ms']:12.1f}{figures['exec_ratio']:8.2f}{'<= 1.0':>8}")
    report(f"{f'port-forward {megabytes} MiB, median of {forwards} (MB/s)':42}"
           f"{figures['crid_forward_mb_s']:10.1f}{figures['containerd_forward_mb_s']:12.1f}"
           f"{figures['forward_ratio']:8.2f}{'>= 0.8':>8}")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = command.parser("e2e.bench.streaming", __doc__, execs=(30, "execs per runtime"),
                            forwards=(3, "port-forwards per runtime"),
                            megabytes=(100, "MiB per port-forward"))
    parser.add_argument("--handler", default="",
                        help="crid's runtime handler (default: its default; 'runc' as containerd)")
    args = parser.parse_args(argv)
    run(args.execs, args.forwards, args.megabytes, args.handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
