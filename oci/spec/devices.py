"""Devices: ``linux.devices`` nodes and the device cgroup rules that admit them.

The rules start by denying everything, then allow what every container needs
(the nodes runtimes create themselves: null, zero, full, random, urandom,
tty, console, ptmx, pts, tun, and mknod of any node), then the request's
devices with their permissions. A privileged container gets every device of
the host's /dev and a rule allowing all.
"""

from __future__ import annotations

import os

from cri_api.v1 import api_pb2
from crid.oci.runtime_spec import Device, DeviceRule
from crid.oci.spec.host import DeviceNode, Host

from crid.errors import InvalidArgument, NotFound

DEFAULT_RULES: tuple[DeviceRule, ...] = (
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},  # null
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},  # zero
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},  # full
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},  # random
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},  # urandom
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},  # tty
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},  # console
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},  # ptmx
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},  # pts/*
    {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},  # net/tun
)


def _node(node: DeviceNode, path: str) -> Device:
    return {
        "path": path, "type": node.kind, "major": node.major, "minor": node.minor,
        "fileMode": node.mode, "uid": node.uid, "gid": node.gid,
    }


def _rule(node: DeviceNode, access: str) -> DeviceRule:
    return {"allow": True, "type": node.kind, "major": node.major, "minor": node.minor,
            "access": access}


def _permissions(text: str, path: str) -> str:
    access = text or "rwm"
    if not set(access) <= set("rwm") or len(set(access)) != len(access):
        raise InvalidArgument(f"device {path}: permissions {text!r} are not a subset of 'rwm'")
    return access


def devices(
    requested: list[api_pb2.Device], privileged: bool, host: Host
) -> tuple[list[Device], list[DeviceRule]]:
    """(``linux.devices``, ``linux.resources.devices``)."""
    nodes: list[Device] = []
    rules: list[DeviceRule] = list(DEFAULT_RULES)
    if privileged:
        nodes += [_node(n, n.path) for n in host.device_nodes("/dev")]
        rules = [{"allow": True, "access": "rwm"}]
    for device in requested:
        if not device.container_path.startswith("/"):
            raise InvalidArgument(
                f"device container path {device.container_path!r} is not absolute"
            )
        access = _permissions(device.permissions, device.host_path)
        try:
            found = host.device_nodes(device.host_path)
        except FileNotFoundError:
            raise NotFound(f"device {device.host_path} does not exist on this node") from None
        if not found:
            raise InvalidArgument(f"{device.host_path} is not a device or a directory of them")
        for node in found:
            relative = os.path.relpath(node.path, device.host_path)
            path = os.path.normpath(os.path.join(device.container_path, relative))
            nodes = [n for n in nodes if n["path"] != path]
            nodes.append(_node(node, path))
            if not privileged:
                rules.append(_rule(node, access))
    return nodes, rules
