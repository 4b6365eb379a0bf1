"""ListPodSandbox's response cache: reused while the table and pod states hold."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
from pathlib import Path

from cri_api.v1 import api_pb2
from crid.oci.state import proc_start_time

from crid.listing_cache import ListingCache
from crid.sandbox import records, schema, status
from crid.sandbox.infra import Infra
from crid.store import Store
from tests.crid.test_sandbox_records import sandbox


class FakeSandboxes:
    """The part of ``Sandboxes`` listing reads."""

    def __init__(self, table: records.SandboxRecords) -> None:
        self.records = table
        self.listed: dict[str, tuple[records.Sandbox, api_pb2.PodSandbox]] = {}
        self.listings: ListingCache[api_pb2.ListPodSandboxResponse] = ListingCache()


def list_all(ctx: FakeSandboxes) -> api_pb2.ListPodSandboxResponse:
    return status.list_sandboxes(ctx, api_pb2.ListPodSandboxRequest())  # type: ignore[arg-type]


def test_reused_until_a_write_or_an_infra_process_dies(tmp_path: Path) -> None:
    store = Store(tmp_path / "db", migrations={"sandbox": schema.MIGRATIONS}).open()
    table = records.SandboxRecords(store)
    infra = subprocess.Popen(["sleep", "30"])
    try:
        live = Infra(pid=infra.pid, start_time=proc_start_time(infra.pid) or 0,
                     parent_pid=os.getpid())
        asyncio.run(table.insert(dataclasses.replace(sandbox("abc"), infra=live)))
        ctx = FakeSandboxes(table)
        first = list_all(ctx)
        assert [p.state for p in first.items] == [api_pb2.SANDBOX_READY]
        assert list_all(ctx) is first

        asyncio.run(table.insert(dataclasses.replace(sandbox("def", name="db"), infra=None)))
        second = list_all(ctx)
        assert [p.id for p in second.items] == ["abc", "def"]
        assert list_all(ctx) is second

        infra.kill()
        infra.wait()
        third = list_all(ctx)
        assert [p.state for p in third.items] == [api_pb2.SANDBOX_NOTREADY,
                                                  api_pb2.SANDBOX_READY]
    finally:
        infra.kill()
        infra.wait()
