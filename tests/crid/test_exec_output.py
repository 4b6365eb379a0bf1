"""ExecSync's capped reader: the first bytes kept, the rest read and counted,
one budget shared by both streams."""

from __future__ import annotations

import asyncio

from crid import errors
from crid.containers import exec_output


def _feed(data: bytes, pieces: int) -> asyncio.StreamReader:
    stream = asyncio.StreamReader()
    step = max(1, len(data) // pieces)
    for start in range(0, len(data), step):
        stream.feed_data(data[start:start + step])
    stream.feed_eof()
    return stream


def _read(data: bytes, limit: int, pieces: int = 7) -> exec_output.Captured:
    async def run() -> exec_output.Captured:
        return await exec_output.read_capped(_feed(data, pieces), exec_output.Budget(limit))

    return asyncio.run(run())


def test_output_under_the_limit_is_kept_whole() -> None:
    captured = _read(b"hello\n" * 100, limit=1000)
    assert captured == exec_output.Captured(b"hello\n" * 100, 0)
    assert exec_output.truncation_notice("stdout", captured, exec_output.Budget(1000)) == b""


def test_output_past_the_limit_keeps_the_first_bytes_and_counts_the_rest() -> None:
    data = bytes(range(256)) * 4000  # 1,024,000 bytes, in chunks larger and smaller than CHUNK
    for limit in (0, 1, 1000, exec_output.CHUNK, exec_output.CHUNK + 1, len(data) - 1):
        captured = _read(data, limit, pieces=3)
        assert captured.kept == data[:limit]
        assert captured.dropped == len(data) - limit
    notice = exec_output.truncation_notice("stdout", _read(data, 1000),
                                           exec_output.Budget(1000))
    assert notice == (b"\ncrid: ExecSync stdout truncated: output is capped at 1000 bytes, "
                      b"kept 1000, dropped 1023000\n")


def test_exactly_the_limit_is_not_truncated() -> None:
    captured = _read(b"x" * 4096, limit=4096)
    assert captured == exec_output.Captured(b"x" * 4096, 0)


def test_both_streams_share_one_budget() -> None:
    async def run() -> tuple[exec_output.Captured, exec_output.Captured]:
        budget = exec_output.Budget(10_000)
        out, err = await asyncio.gather(
            exec_output.read_capped(_feed(b"o" * 8_000, 4), budget),
            exec_output.read_capped(_feed(b"e" * 8_000, 4), budget))
        return out, err

    out, err = asyncio.run(run())
    assert len(out.kept) + len(err.kept) == 10_000
    assert out.dropped + err.dropped == 6_000
    assert set(out.kept) <= {ord("o")} and set(err.kept) <= {ord("e")}


def test_the_default_answer_fits_the_message_kubelet_accepts() -> None:
    assert exec_output.DEFAULT_LIMIT + exec_output.FRAMING == 16 * 1024 * 1024


async def _no_task_left() -> None:
    await asyncio.sleep(0)
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert all(t.done() for t in others), others


def test_collect_returns_the_code_and_both_streams_with_the_notice() -> None:
    async def run() -> exec_output.ExecResult:
        async def ended() -> int:
            return 3

        async def stop() -> None:
            raise AssertionError("no timeout: nothing to stop")

        return await exec_output.collect(
            _feed(b"o" * 10, 3), _feed(b"e" * 4, 2), ended(), limit=12, timeout=5,
            stop=stop, command=["x"])

    result = asyncio.run(run())
    assert result.exit_code == 3 and result.stdout + result.stderr[:2] == b"o" * 10 + b"ee"
    assert b"ExecSync stderr truncated" in result.stderr


def test_collect_on_timeout_stops_the_process_and_leaves_no_reader() -> None:
    stopped: list[bool] = []

    async def run() -> None:
        silent = asyncio.StreamReader()  # never ends: only the timeout does

        async def stop() -> None:
            stopped.append(True)

        try:
            await exec_output.collect(silent, asyncio.StreamReader(),
                                      asyncio.sleep(60, result=0), limit=10, timeout=0.05,
                                      stop=stop, command=["sleep", "60"])
        except errors.DeadlineExceeded as exc:
            assert "['sleep', '60'] timed out after 0.05 seconds" in exc.message
        else:
            raise AssertionError("no DeadlineExceeded")
        await _no_task_left()

    asyncio.run(run())
    assert stopped == [True]


def test_collect_passes_on_what_ended_raised_and_cancels_the_readers() -> None:
    async def run() -> None:
        async def ended() -> int:
            raise errors.Unavailable("the server died")

        async def stop() -> None:
            raise AssertionError("not a timeout")

        try:
            await exec_output.collect(asyncio.StreamReader(), asyncio.StreamReader(), ended(),
                                      limit=10, timeout=5, stop=stop, command=["x"])
        except errors.Unavailable:
            pass
        else:
            raise AssertionError("the error was swallowed")
        await _no_task_left()

    asyncio.run(run())
