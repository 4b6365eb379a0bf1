"""ListContainers' response cache: reused while nothing it was made from changed."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cri_api.v1 import api_pb2

from crid.containers import schema, status
from crid.containers.records import (
    CRI_STATE,
    EXITED,
    RUNNING,
    Container,
    ContainerRecords,
    User,
)
from crid.listing_cache import ListingCache
from crid.store import Store


def container(container_id: str, state: str = RUNNING) -> Container:
    config = api_pb2.ContainerConfig(metadata=api_pb2.ContainerMetadata(name=container_id),
                                     labels={"app": "web"})
    return Container(
        id=container_id, pod_id="pod1", name=container_id, attempt=0, state=state,
        created_ns=1, handler="runc", image="busybox", image_ref="busybox@sha256:1",
        image_id="sha256:1", config_bytes=config.SerializeToString(), resources_bytes=b"",
        log_path="", bundle="/run/x", layer_dir="/var/x", user=User(0, 0, ()),
        stop_signal="SIGTERM")


class FakeContainers:
    """The part of ``Containers`` listing reads; ``current`` counts exit-file reads."""

    def __init__(self, records: ContainerRecords) -> None:
        self.records = records
        self.listed: dict[str, tuple[Container, api_pb2.Container]] = {}
        self.listings: ListingCache[api_pb2.ListContainersResponse] = ListingCache()
        self.watch_generation = 0
        self.watched: set[str] = set()
        self.exit_reads = 0

    def settled(self, c: Container) -> bool:
        return c.id in self.watched or c.state != RUNNING

    def current(self, c: Container) -> Container:
        if c.id not in self.watched:
            self.exit_reads += 1
        return c


def list_all(ctx: FakeContainers, request: api_pb2.ListContainersRequest | None = None
             ) -> api_pb2.ListContainersResponse:
    return asyncio.run(status.list_containers(
        ctx, request or api_pb2.ListContainersRequest()))  # type: ignore[arg-type]


def test_watched_containers_are_answered_from_the_cache_until_a_write(tmp_path: Path) -> None:
    records = ContainerRecords(Store(tmp_path / "db",
                                     migrations={"containers": schema.MIGRATIONS}).open())
    asyncio.run(records.insert(container("a")))
    asyncio.run(records.insert(container("b")))
    ctx = FakeContainers(records)
    ctx.watched = {"a", "b"}
    first = list_all(ctx)
    assert [c.id for c in first.containers] == ["a", "b"]
    assert list_all(ctx) is first
    running = api_pb2.ListContainersRequest(filter=api_pb2.ContainerFilter(
        state=api_pb2.ContainerStateValue(state=api_pb2.CONTAINER_RUNNING)))
    assert list_all(ctx, running) is not first  # another filter, another entry

    asyncio.run(records.update("a", state=EXITED, exit_code=0))  # what the exit watch does
    after = list_all(ctx)
    assert after is not first
    assert [c.state for c in after.containers] == [CRI_STATE[EXITED], CRI_STATE[RUNNING]]
    assert [c.id for c in list_all(ctx, running).containers] == ["b"]


def test_an_unwatched_live_container_is_looked_at_on_every_call(tmp_path: Path) -> None:
    records = ContainerRecords(Store(tmp_path / "db",
                                     migrations={"containers": schema.MIGRATIONS}).open())
    asyncio.run(records.insert(container("a")))
    ctx = FakeContainers(records)
    first = list_all(ctx)
    assert list_all(ctx) is not first
    assert ctx.exit_reads == 2
    ctx.watched.add("a")
    ctx.watch_generation += 1  # what Containers.watch does
    cached = list_all(ctx)
    assert list_all(ctx) is cached
    assert ctx.exit_reads == 2


class StatusContainers(FakeContainers):
    """What ContainerStatus reads off the loop: the records and the exit files."""

    def __init__(self, records: ContainerRecords) -> None:
        super().__init__(records)
        self.exits: set[str] = set()

    def exit_written(self, container_id: str) -> bool:
        return container_id in self.exits


def test_inline_status_leaves_an_exit_to_record_and_prefixes_to_the_loop(tmp_path: Path
                                                                        ) -> None:
    records = ContainerRecords(Store(tmp_path / "db",
                                     migrations={"containers": schema.MIGRATIONS}).open())
    asyncio.run(records.insert(container("abc")))
    asyncio.run(records.insert(container("done", state=EXITED)))
    ctx = StatusContainers(records)

    def inline(container_id: str, verbose: bool = False
               ) -> api_pb2.ContainerStatusResponse | None:
        return status.inline_status(ctx, api_pb2.ContainerStatusRequest(  # type: ignore[arg-type]
            container_id=container_id, verbose=verbose))

    found = inline("abc", verbose=True)
    assert found is not None and found.status.state == CRI_STATE[RUNNING]
    assert '"runtimeSpec": {}' in found.info["info"]  # no bundle here: an empty spec
    assert inline("ab") is None  # a prefix: the loop resolves it
    assert inline("nope") is None  # unknown: the loop says NOT_FOUND
    ctx.exits.add("abc")
    assert inline("abc") is None  # conmon wrote its exit: the loop records it first
    ctx.exits.add("done")
    done = inline("done")
    assert done is not None and done.status.state == CRI_STATE[EXITED]
