"""Statuses as clients parse them, and terminal sizes from a JSON stream."""

from __future__ import annotations

import asyncio
import json

from crid.streaming import remotecommand
from crid.streaming.backend import TerminalSize


def test_exit_failure_is_kubelets_status() -> None:
    status = remotecommand.exit_failure(("sh", "-c", "exit 3"), 3)
    assert json.loads(remotecommand.encode_status(status, structured=True)) == {
        "metadata": {}, "status": "Failure",
        "message": "command terminated with non-zero exit code: error executing command "
                   "[sh -c exit 3], exit code 3",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
    }


def test_success_is_json_in_v4_and_nothing_before() -> None:
    assert remotecommand.encode_status(remotecommand.success(), structured=True) == (
        b'{"metadata":{},"status":"Success"}')
    assert remotecommand.encode_status(remotecommand.success(), structured=False) == b""


def test_failures_before_v4_are_the_message() -> None:
    status = remotecommand.internal_error("no such container")
    assert remotecommand.encode_status(status, structured=False) == (
        b"Internal error occurred: no such container")


def collect(chunks: list[bytes]) -> list[TerminalSize]:
    async def run() -> list[TerminalSize]:
        feed = iter(chunks)

        async def read() -> bytes:
            return next(feed, b"")

        return [size async for size in remotecommand.sizes(read)]

    return asyncio.run(run())


def test_sizes_split_across_reads_and_packed_together() -> None:
    chunks = [b'{"Width":80,', b'"Height":24}\n{"Width":1',
              b'00,"Height":40}{"Width":1,"Height":2}']
    assert collect(chunks) == [TerminalSize(80, 24), TerminalSize(100, 40), TerminalSize(1, 2)]


def test_sizes_skip_objects_that_are_not_sizes() -> None:
    assert collect([b'{"Width":"x","Height":1} [1] {"Width":3,"Height":4}']) == [
        TerminalSize(3, 4)]
