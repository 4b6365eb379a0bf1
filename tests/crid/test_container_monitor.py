"""What of a runtime's stderr becomes the error message kubelet shows."""

from __future__ import annotations

from crid.containers.monitor import _runtime_error


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
