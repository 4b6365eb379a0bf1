"""Benchmark: what one no-op NRI plugin costs a pod's start.

``python -m e2e.bench.nri`` (root). Two private crids on their own pod
networks, the same busybox pulled on both: one with NRI off, one with NRI
on and one plugin connected (``e2e.nri.plugin.ScriptedPlugin``, subscribed
to every event, answering each at once: the cost is crid's side of the
protocol plus a Python plugin's round trips). Pod start as in
``e2e.bench.pods`` (RunPodSandbox + CreateContainer + StartContainer until
RUNNING), one pod at a time, alternating between the two daemons so drift on
the node hits both alike; the median of ``--count`` each after warm-up.
Target: with the plugin at most 1.15 times without.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

from cri_api.v1 import api_pb2

from e2e.bench.pods import Runtime, start_pod, stop_pod
from e2e.bench.sandbox import WARMUP
from e2e.fixtures.images import busybox_image, push
from e2e.fixtures.registry import Registry
from e2e.nri.plugin import ScriptedPlugin
from e2e.sandbox.pods import pod_daemon

TARGET = 1.15


def run(count: int, handler: str) -> dict[str, float]:
    with contextlib.ExitStack() as stack:
        registry = stack.enter_context(Registry())
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="crid-bench-nri-")))
        image = push(registry, "bench/busybox", "1", busybox_image()).reference
        socket = scratch / "nri.sock"
        runtimes = []
        for name, toml in (("without", ""), ("with plugin",
                           f'[crid.nri]\nenable = true\nsocket_path = "{socket}"\n'
                           'plugin_path = ""\n')):
            daemon, net = stack.enter_context(pod_daemon(
                extra_toml=toml, extra_args=("--log-level", "warning")))
            daemon.image.PullImage(api_pb2.PullImageRequest(
                image=api_pb2.ImageSpec(image=image)))
            runtimes.append(Runtime(name, daemon.runtime, handler, net.cgroup_parent, image,
                                    scratch / name.replace(" ", "-"), daemon.workdir))
        plugin = ScriptedPlugin(str(socket), "noop").start()
        stack.callback(plugin.stop)
        taken: dict[str, list[float]] = {rt.name: [] for rt in runtimes}
        for index in range(WARMUP + count):
            for rt in runtimes:
                started = time.perf_counter()
                pod_id, container_id = start_pod(rt)
                elapsed = (time.perf_counter() - started) * 1000
                stop_pod(rt, pod_id, container_id)
                if index >= WARMUP:
                    taken[rt.name].append(elapsed)
        assert plugin.methods().count("RunPodSandbox") == WARMUP + count, plugin.methods()
    without, with_plugin = (statistics.median(taken[rt.name]) for rt in runtimes)
    ratio = with_plugin / without
    print(f"Pod start (RunPodSandbox + CreateContainer + StartContainer until RUNNING), "
          f"handler {handler}, median of {count}")
    print(f"{'NRI off (ms)':>14}{'1 no-op plugin (ms)':>22}{'ratio':>8}{'target':>9}")
    print(f"{without:14.1f}{with_plugin:22.1f}{ratio:8.2f}{'<= ' + str(TARGET):>9}")
    return {"without_ms": without, "with_plugin_ms": with_plugin, "ratio": ratio}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20, help="timed pods per daemon (20)")
    parser.add_argument("--handler", default="crid", help="runtime handler (default crid)")
    args = parser.parse_args(argv)
    run(args.count, args.handler)
    return 0


if __name__ == "__main__":
    main()
