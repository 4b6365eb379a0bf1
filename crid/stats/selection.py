"""Which records a stats call measures: the CRI filters' label selection, and each
pod's containers in their current state (shared by pod stats and pod metrics)."""

from __future__ import annotations

from collections.abc import Mapping

from crid.containers.context import Containers
from crid.containers.records import Container


def selected(labels: Mapping[str, str], selector: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def containers_by_pod(containers: Containers) -> dict[str, list[Container]]:
    by_pod: dict[str, list[Container]] = {}
    for container in containers.records.all():
        by_pod.setdefault(container.pod_id, []).append(containers.current(container))
    return by_pod
