"""Copy-out: what a caller gets from the container and pod records is its own.
Changing a config it read, or the dict it inserted, leaves the store as it was."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
from cri_api.v1 import api_pb2

from crid.containers import schema as container_schema
from crid.containers.records import Container, ContainerRecords
from crid.sandbox import records as sandbox_records
from crid.sandbox import schema as sandbox_schema
from crid.store import Store
from tests.crid.test_container_listing import container
from tests.crid.test_sandbox_records import sandbox


def _containers(tmp_path: Path) -> ContainerRecords:
    return ContainerRecords(Store(tmp_path / "db",
                                  migrations={"containers": container_schema.MIGRATIONS}).open())


def test_a_container_config_read_and_changed_is_the_callers_alone(tmp_path: Path) -> None:
    table = _containers(tmp_path)
    asyncio.run(table.insert(container("a")))
    got = table.get("a")
    assert got is not None
    config = got.config
    config.labels["app"] = "evil"
    config.metadata.name = "evil"
    resources = got.resources
    resources.memory_limit_in_bytes = 1
    again = table.get("a")
    assert again is got  # immutable: the same record is as good as a copy
    assert again.config.labels["app"] == "web" and again.config.metadata.name == "a"
    assert again.resources.memory_limit_in_bytes == 0
    assert again.metadata == api_pb2.ContainerMetadata(name="a")
    with pytest.raises(TypeError):
        again.labels["app"] = "evil"  # type: ignore[index]
    assert ContainerRecords(table.store).all() == table.all()  # what the table holds


def test_an_updated_container_holds_the_new_resources(tmp_path: Path) -> None:
    table = _containers(tmp_path)
    asyncio.run(table.insert(container("a")))
    limits = api_pb2.LinuxContainerResources(cpu_shares=512)
    updated = asyncio.run(table.update("a", resources_bytes=limits.SerializeToString()))
    assert isinstance(updated, Container) and updated.resources.cpu_shares == 512
    assert asyncio.run(table.update("nothing", state="exited")) is None
    fresh = ContainerRecords(table.store)
    got = fresh.get("a")
    assert got is not None and got.resources.cpu_shares == 512
    with pytest.raises(KeyError):
        asyncio.run(table.update("a", config_bytes=b""))


def test_a_pod_holds_neither_the_callers_dict_nor_hands_out_its_own(tmp_path: Path) -> None:
    table = sandbox_records.SandboxRecords(
        Store(tmp_path / "db", migrations={"sandbox": sandbox_schema.MIGRATIONS}).open())
    namespaces = {"net": "/run/crid/pods/x/net"}
    asyncio.run(table.insert(dataclasses.replace(sandbox("abc"), namespaces=namespaces)))
    namespaces["net"] = "/proc/1/ns/net"  # the caller's dict, changed after the insert
    got = table.get("abc")
    assert got is not None and got.netns == "/run/crid/pods/x/net"
    with pytest.raises(TypeError):
        got.namespaces["net"] = "/proc/1/ns/net"  # type: ignore[index]
    config = got.config
    config.labels["app"] = "evil"
    assert dict(got.labels) == {"app": "web"} and got.config.labels["app"] == "web"
    assert got.metadata == api_pb2.PodSandboxMetadata(name="web", uid="u", namespace="ns")
