"""Fuzz target: what CNI plugins print (results and errors), and network configs.

The input is a plugin's stdout, read in each role: the result of ADD
(``invoke.plugin_result`` with exit code 0), then the pod's addresses taken
from it (``manager.pod_ips``) and the config the next plugin of the chain
gets with it as ``prevResult``; the error of a failed command (exit code 1);
and a network config file of ``/etc/cni/net.d`` (``config.parse``), with
each plugin's capability args (``args.runtime_config``).

Allowed: crid's typed errors (``PluginError`` is one) and ``ConfigProblem``
(a config file crid skips, reported in Status). Anything else escaping is a
bug: a third-party plugin's odd output would fail RunPodSandbox as INTERNAL,
or a stray file in the config dir would stop the network from coming up.
"""

from __future__ import annotations

import json

from crid.network.cni import config as cni_config
from crid.network.cni.args import runtime_config
from crid.network.cni.invoke import plugin_result
from crid.network.cni.manager import NetworkManager, pod_ips

from tests.fuzz.harness import allowing

CAPABILITY_ARGS = {
    "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
    "bandwidth": {"ingressRate": 1000, "ingressBurst": 2**31 - 1},
    "dns": {"servers": ["10.96.0.10"]},
}
NETWORK = cni_config.parse(json.dumps({
    "cniVersion": "1.0.0", "name": "fuzz",
    "plugins": [{"type": "bridge"}, {"type": "portmap", "capabilities": {"portMappings": True}}],
}))


def one_input(data: bytes) -> None:
    with allowing():
        result = plugin_result("bridge", "ADD", 0, data, b"")
        if result is not None:
            pod_ips(result)
            conf = NetworkManager._plugin_config(NETWORK, NETWORK.plugins[1], CAPABILITY_ARGS,
                                                 result)
            json.dumps(conf)
    with allowing():
        plugin_result("bridge", "DEL", 1, data, b"stderr")
    with allowing(cni_config.ConfigProblem):
        network = cni_config.parse(data.decode(errors="replace"), "fuzz.conflist")
        network.has_check, network.passes_prev_result_to_del  # noqa: B018
        for plugin in network.plugins:
            runtime_config(plugin, CAPABILITY_ARGS)

