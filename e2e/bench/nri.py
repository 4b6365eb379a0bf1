"""Benchmark: what one no-op NRI plugin costs a pod's start.

``python -m e2e.bench.nri`` (root). Three private crids on their own pod
networks, the same busybox pulled on each: NRI off; NRI on with no plugin
(the default); NRI on and one plugin connected (``e2e.nri.plugin.ScriptedPlugin`` in a process
of its own, as plugins are; subscribed to every event, answering each at
once: the cost is crid's side of the protocol plus a Python plugin's round
trips). Pod start as in
``e2e.bench.pods`` (RunPodSandbox + CreateContainer + StartContainer until
RUNNING), one pod at a time, in turn on the three daemons so drift on
the node hits both alike; the median of ``--count`` each after warm-up.
Target: with the plugin at most 1.15 times without.
"""

from __future__ import annotations

import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from cri_api.v1 import api_pb2
from prometheus_client.parser import text_string_to_metric_families

from e2e.bench import _command as command
from e2e.bench.pods import Runtime, start_pod, stop_pod
from e2e.bench.sandbox import WARMUP
from e2e.fixtures.images import busybox_image, push
from e2e.fixtures.registry import Registry
from e2e.sandbox.pods import pod_daemon

TARGET = 1.15
PLUGIN = """
import sys
from e2e.nri.plugin import ScriptedPlugin
ScriptedPlugin(sys.argv[1], "noop").start().wait()
"""


def _connected(metrics_url: str) -> bool:
    text = httpx.get(metrics_url, timeout=10).text
    return any(s.value == 1 for family in text_string_to_metric_families(text)
               for s in family.samples if s.name == "crid_nri_plugins")


def run(count: int, handler: str) -> dict[str, float]:
    with contextlib.ExitStack() as stack:
        registry = stack.enter_context(Registry())
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="crid-bench-nri-")))
        image = push(registry, "bench/busybox", "1", busybox_image()).reference
        socket = scratch / "nri.sock"
        runtimes: list[Runtime] = []
        metrics_urls: list[str] = []
        for name, toml in (
                ("off", "[crid.nri]\nenable = false\n"),
                ("on, no plugin", f'[crid.nri]\nsocket_path = "{scratch / "idle.sock"}"\n'
                                  'plugin_path = ""\n'),
                ("1 no-op plugin", f'[crid.nri]\nsocket_path = "{socket}"\n'
                                   'plugin_path = ""\n')):
            # info: the fixture finds the metrics port (to see the plugin
            # connect) in the "metrics listening" line, an info one.
            daemon, net = stack.enter_context(pod_daemon(
                extra_toml=toml, extra_args=("--log-level", "info")))
            daemon.image.PullImage(api_pb2.PullImageRequest(
                image=api_pb2.ImageSpec(image=image)))
            metrics_urls.append(daemon.metrics_url)
            runtimes.append(Runtime(name, daemon.runtime, handler, net.cgroup_parent, image,
                                    scratch / f"logs-{len(runtimes)}", daemon.workdir))
        plugin = subprocess.Popen([sys.executable, "-P", "-c", PLUGIN, str(socket)])
        stack.callback(plugin.wait)
        stack.callback(plugin.terminate)
        deadline = time.monotonic() + 10
        while not _connected(metrics_urls[2]):
            assert time.monotonic() < deadline, "the no-op plugin did not connect"
            time.sleep(0.05)
        taken: dict[str, list[float]] = {rt.name: [] for rt in runtimes}
        for index in range(WARMUP + count):
            for rt in runtimes:
                started = time.perf_counter()
                pod_id, container_id = start_pod(rt)
                elapsed = (time.perf_counter() - started) * 1000
                stop_pod(rt, pod_id, container_id)
                if index >= WARMUP:
                    taken[rt.name].append(elapsed)
        assert _connected(metrics_urls[2]), "the no-op plugin was dropped during the run"
    off, idle, with_plugin = (statistics.median(taken[rt.name]) for rt in runtimes)
    figures = {"off_ms": off, "idle_ms": idle, "with_plugin_ms": with_plugin,
               "idle_ratio": idle / off, "ratio": with_plugin / off}
    print(f"Pod start (RunPodSandbox + CreateContainer + StartContainer until RUNNING), "
          f"handler {handler}, median of {count}; ratios against NRI off")
    print(f"{'NRI off (ms)':>14}{'on, no plugin':>15}{'ratio':>7}{'1 no-op plugin':>16}"
          f"{'ratio':>7}{'target':>9}")
    print(f"{off:14.1f}{idle:15.1f}{figures['idle_ratio']:7.2f}{with_plugin:16.1f}"
          f"{figures['ratio']:7.2f}{'<= ' + str(TARGET):>9}")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = command.parser("e2e.bench.nri", __doc__, count=(20, "timed pods per daemon"))
    parser.add_argument("--handler", default="crid", help="runtime handler (default crid)")
    args = parser.parse_args(argv)
    run(args.count, args.handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
