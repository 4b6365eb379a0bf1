"""The composition root builds every part without touching the node: constructors do no I/O.

Building ``crid.wiring.Parts`` with every path in an empty temp dir, while
the calls that read or write files, open databases or start processes
refuse, must succeed and leave the dir empty; the work waits for ``start``.
"""

from __future__ import annotations

import builtins
import dataclasses
import os
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

import crid.nri.hooks  # noqa: F401 - imported by Parts when NRI is on; importing reads files
from crid import wiring
from crid.config import Config
from crid.lifecycle_hooks import NO_HOOKS

REFUSED = [(os, "open"), (os, "stat"), (os, "lstat"), (os, "mkdir"), (os, "makedirs"),
           (os, "scandir"), (os, "listdir"), (os, "pipe"), (os, "pidfd_open"),
           (builtins, "open"), (sqlite3, "connect"), (subprocess, "Popen")]


def node_config(tmp_path: Path) -> Config:
    def at(name: str) -> str:
        return str(tmp_path / name)

    return dataclasses.replace(
        Config(), root=at("root"), runroot=at("run"), cni_config_dir=at("net.d"),
        registries_conf=at("registries.conf"), cdi_spec_dirs=(at("cdi"),), nri_enable=True,
        nri_socket_path=at("nri/nri.sock"), nri_plugin_path=at("nri/plugins"),
        nri_plugin_config_path=at("nri/conf.d"))


def test_building_the_parts_reads_and_writes_nothing(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    config = node_config(tmp_path)
    touched: list[str] = []

    def refuse(name: str) -> Callable[..., object]:
        def call(*args: object, **kwargs: object) -> object:
            touched.append(f"{name}{args}")
            raise AssertionError(f"{name}{args} while building the parts")
        return call

    for module, name in REFUSED:
        monkeypatch.setattr(module, name, refuse(f"{module.__name__}.{name}"))
    try:
        parts = wiring.Parts(config)
    finally:
        monkeypatch.undo()
    assert touched == []
    assert list(tmp_path.iterdir()) == []
    # Nothing is plugged in before start: NRI's hooks wait for its socket.
    assert parts.sandboxes.hooks is NO_HOOKS and parts.containers.hooks is NO_HOOKS
    assert parts.nri is not None


def test_the_families_serve_every_call_once(tmp_path: Path) -> None:
    """No RPC is served by two families (the server would take the first)."""
    parts = wiring.Parts(node_config(tmp_path))
    seen: dict[str, str] = {}
    for family in parts.families:
        for name in dir(family):
            if name[:1].isupper() and callable(getattr(family, name)):
                assert name not in seen, f"{name} in {seen.get(name)} and {type(family).__name__}"
                seen[name] = type(family).__name__
    assert {"RunPodSandbox", "CreateContainer", "PullImage", "Version", "ContainerStats",
            "GetContainerEvents", "StreamImages", "UpdateContainerResources"} <= seen.keys()
