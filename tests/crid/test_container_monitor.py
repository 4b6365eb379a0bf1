"""What of a runtime's stderr becomes the error message kubelet shows, and
reading conmon's report (``_read_report``) on real pipes."""

from __future__ import annotations

import asyncio
import contextlib
import os

import pytest

from crid.containers.monitor import REPORT_LIMIT, _read_report, _runtime_error


def test_the_error_line_wins_over_warnings_logged_after_it() -> None:
    err = (b'time="t" level=warning msg="cannot toggle freezer"\n'
           b'time="t" level=error msg="runc create failed: exec: /x: not found"\n'
           b'time="t" level=warning msg="lstat : no such file"\n')
    assert _runtime_error(err) == "runc create failed: exec: /x: not found"


def test_json_lines_and_plain_text() -> None:
    assert _runtime_error(b'{"level":"error","msg":"no such container"}\n') == \
        "no such container"
    assert _runtime_error(b"first\nplain last\n\n") == "plain last"
    assert _runtime_error(b"") == ""


def test_conmons_own_warnings_are_not_the_runtimes_error() -> None:
    # conmon's child writes this to the runtime's stderr pipe before it runs
    # the runtime: a runtime killed before a word is left with only it.
    warning = b"[conmon:d]: failed to write to /proc/self/oom_score_adj: Permission denied\n"
    assert _runtime_error(warning) == ""
    assert _runtime_error(warning + b"crid-runtime: no such file\n") == "crid-runtime: no such file"


def _closed(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return True
    return False


def test_the_report_is_one_line_read_without_waiting_for_eof() -> None:
    read, write = os.pipe()
    os.write(write, b'{"data": 42}\n')  # conmon keeps its end open
    try:
        assert asyncio.run(_read_report(read)) == b'{"data": 42}\n'
        assert _closed(read)
    finally:
        os.close(write)


def test_a_wait_given_up_closes_the_pipe_and_leaves_no_reader() -> None:
    read, write = os.pipe()
    try:
        with pytest.raises(TimeoutError):
            asyncio.run(asyncio.wait_for(_read_report(read), 0.05))
        assert _closed(read)  # no thread still blocked in a read of it
    finally:
        os.close(write)


def test_an_endless_report_is_no_report() -> None:
    read, write = os.pipe()
    os.set_blocking(write, False)

    async def flood() -> bytes:
        async def fill() -> None:
            with contextlib.suppress(BlockingIOError, BrokenPipeError):
                for _ in range(REPORT_LIMIT // 4096 + 4):
                    os.write(write, b"x" * 4096)
                    await asyncio.sleep(0)
        filling = asyncio.ensure_future(fill())
        try:
            return await _read_report(read)
        finally:
            await filling

    try:
        assert asyncio.run(flood()) == b""
    finally:
        os.close(write)
