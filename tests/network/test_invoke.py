"""Running a real plugin executable: env, stdin, and the CNI error object."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from crid.network.cni.invoke import PluginError, PluginRunner, invoke

from crid.errors import FailedPrecondition

ECHO = """#!/bin/sh
conf=$(cat)
printf '{"cniVersion":"1.0.0","ips":[{"address":"10.9.0.2/24"}],"seen":"%s %s"}' \\
  "$CNI_COMMAND" "$CNI_IFNAME"
"""
FAIL = """#!/bin/sh
echo '{"cniVersion":"1.0.0","code":100,"msg":"boom"}'
exit 1
"""
CRASH = """#!/bin/sh
echo 'panic: nil pointer' >&2
exit 2
"""


def plugin(tmp_path: Path, name: str, body: str) -> None:
    (tmp_path / name).write_text(body)
    (tmp_path / name).chmod(0o755)


def test_result_and_env(tmp_path: Path) -> None:
    plugin(tmp_path, "echo", ECHO)
    result = asyncio.run(invoke(PluginRunner(), [str(tmp_path)], "ADD", {"type": "echo"},
                                {"CNI_IFNAME": "eth0"}, 5))
    assert result is not None and result["seen"] == "ADD eth0"


def test_cni_error_object_and_crash(tmp_path: Path) -> None:
    plugin(tmp_path, "fail", FAIL)
    plugin(tmp_path, "crash", CRASH)
    with pytest.raises(PluginError, match="fail failed on ADD: boom") as caught:
        asyncio.run(invoke(PluginRunner(), [str(tmp_path)], "ADD", {"type": "fail"}, {}, 5))
    assert caught.value.cni_code == 100
    with pytest.raises(PluginError, match="exited with 2: panic: nil pointer"):
        asyncio.run(invoke(PluginRunner(), [str(tmp_path)], "DEL", {"type": "crash"}, {}, 5))


def test_missing_plugin(tmp_path: Path) -> None:
    with pytest.raises(FailedPrecondition, match="'nope' not found"):
        asyncio.run(invoke(PluginRunner(), [str(tmp_path)], "ADD", {"type": "nope"}, {}, 5))
