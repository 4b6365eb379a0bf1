"""StartContainer's record: an exit read, or a monitor lost, while the runtime
was starting stays."""

from __future__ import annotations

import asyncio
from pathlib import Path

from crid.containers import schema
from crid.containers.records import CREATED, EXITED, RUNNING, UNKNOWN, ContainerRecords
from crid.containers.start import record_started
from crid.store import Store
from tests.crid.test_container_listing import container


def records(tmp_path: Path) -> ContainerRecords:
    store = Store(tmp_path / "db", migrations={"containers": schema.MIGRATIONS})
    return ContainerRecords(store.open())


def test_a_started_container_is_running_from_now(tmp_path: Path) -> None:
    table = records(tmp_path)
    asyncio.run(table.insert(container("a", state=CREATED)))
    started = asyncio.run(record_started(table, "a", 50))
    assert started is not None and (started.state, started.started_ns) == (RUNNING, 50)


def test_an_exit_recorded_during_start_is_not_overwritten(tmp_path: Path) -> None:
    table = records(tmp_path)
    asyncio.run(table.insert(container("a", state=CREATED)))
    # A ContainerStatus during monitor.start read conmon's exit file first.
    asyncio.run(table.update("a", state=EXITED, exit_code=3, finished_ns=40))
    started = asyncio.run(record_started(table, "a", 50))
    assert started is not None
    assert (started.state, started.exit_code) == (EXITED, 3)
    assert started.started_ns <= started.finished_ns == 40


def test_a_monitor_lost_during_start_stays_unknown(tmp_path: Path) -> None:
    table = records(tmp_path)
    asyncio.run(table.insert(container("a", state=CREATED)))
    # conmon killed while the runtime started the process (e2e/chaos, kill 332):
    # RUNNING would hide it from the stop that must kill and record it.
    asyncio.run(table.update("a", state=UNKNOWN, exit_code=255, finished_ns=40))
    started = asyncio.run(record_started(table, "a", 50))
    assert started is not None and started.state == UNKNOWN
