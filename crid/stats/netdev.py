"""A pod's network counters, read from inside its network namespace.

``/proc/net/dev`` is per network namespace, and ``/proc/thread-self`` names the
reading thread, so a thread that joined the pod's netns reads the pod's
interfaces there (``/proc/self`` would name the daemon's main thread, still
on the host's netns; sysfs shows the netns it was mounted in).
"""

from __future__ import annotations

import dataclasses

from crid.network import namespaces

PROC_NET_DEV = "/proc/thread-self/net/dev"


@dataclasses.dataclass(frozen=True)
class Interface:
    name: str
    rx_bytes: int
    rx_errors: int
    tx_bytes: int
    tx_errors: int
    rx_packets: int
    rx_dropped: int
    tx_packets: int
    tx_dropped: int


def parse(text: str) -> list[Interface]:
    """The interfaces of a /proc/net/dev text, loopback left out (kubelet ignores it)."""
    found = []
    for line in text.splitlines()[2:]:
        name, _, counters = line.partition(":")
        fields = counters.split()
        name = name.strip()
        if len(fields) < 16 or name == "lo":
            continue
        found.append(Interface(name, rx_bytes=int(fields[0]), rx_errors=int(fields[2]),
                               tx_bytes=int(fields[8]), tx_errors=int(fields[10]),
                               rx_packets=int(fields[1]), rx_dropped=int(fields[3]),
                               tx_packets=int(fields[9]), tx_dropped=int(fields[11])))
    return found


def _read_here() -> str:
    with open(PROC_NET_DEV, encoding="ascii") as f:
        return f.read()


def pod_interfaces(netns: str) -> list[Interface]:
    """The interfaces of the netns pinned at ``netns`` (blocking: joins it on a thread)."""
    return parse(namespaces.run_inside({"net": netns}, _read_here))
