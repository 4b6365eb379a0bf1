"""The floor under a burst of pod starts that no runtime can go below: the
same CNI plugins (the conflist both runtimes get in ``e2e.bench``: bridge with
ipMasq, then portmap), run for as many fresh network namespaces at once,
with no runtime in between. bridge, host-local and portmap serialise on
their locks (host-local's store, iptables' xtables lock), so this is time
that a burst pays whatever the runtime does.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

from e2e.bench.sandbox import bridge_conflist
from e2e.sandbox.pods import PodNet

PLUGIN_DIR = Path("/usr/lib/cni")
PLUGIN_TIMEOUT = 60


def _plugin(kind: str, command: str, config: Mapping[str, object], netns: str,
            container_id: str) -> dict[str, object]:
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
           "CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_NETNS": netns,
           "CNI_IFNAME": "eth0", "CNI_PATH": str(PLUGIN_DIR)}
    done = subprocess.run([str(PLUGIN_DIR / kind)], input=json.dumps(config).encode(), env=env,
                          capture_output=True, timeout=PLUGIN_TIMEOUT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"CNI {kind} {command}: {done.stdout[:300]!r} {done.stderr[:300]!r}")
    return json.loads(done.stdout) if done.stdout.strip() else {}


def _chain(command: str, conflist: Mapping[str, object], netns: str, container_id: str) -> None:
    """The conflist's plugins in order (each given the previous result), as
    a runtime runs them; DEL in reverse."""
    plugins = list(conflist["plugins"])  # type: ignore[call-overload]
    previous: dict[str, object] = {}
    for plugin in plugins if command == "ADD" else reversed(plugins):
        config = {"cniVersion": conflist["cniVersion"], "name": conflist["name"], **plugin}
        if previous:
            config["prevResult"] = previous
        result = _plugin(str(plugin["type"]), command, config, netns, container_id)
        if command == "ADD":
            previous = result


@contextlib.contextmanager
def _namespaces(count: int) -> Iterator[list[str]]:
    names = [f"crid-floor-{uuid.uuid4().hex[:8]}" for _ in range(count)]
    try:
        for name in names:
            subprocess.run(["ip", "netns", "add", name], check=True)
        yield names
    finally:
        for name in names:
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def burst_floor(pods: int) -> float:
    """Seconds until ``pods`` concurrent ADDs of the bench's conflist all finish."""
    net = PodNet()
    conflist = bridge_conflist(net)
    try:
        with _namespaces(pods + 1) as names:
            netns = [f"/run/netns/{name}" for name in names]
            _chain("ADD", conflist, netns[-1], names[-1])  # the bridge made, as a warm node has it
            gate = threading.Barrier(pods + 1)
            failures: list[BaseException] = []

            def one(index: int) -> None:
                gate.wait()
                try:
                    _chain("ADD", conflist, netns[index], names[index])
                except BaseException as error:
                    failures.append(error)

            threads = [threading.Thread(target=one, args=(i,)) for i in range(pods)]
            for thread in threads:
                thread.start()
            gate.wait()
            began = time.perf_counter()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - began
            for index, name in enumerate(names):
                with contextlib.suppress(RuntimeError):
                    _chain("DEL", conflist, netns[index], name)
            if failures:
                raise failures[0]
            return wall
    finally:
        net.cleanup()
