"""``crid --version`` and ``crid version``: the installed versions, whatever the config."""

from __future__ import annotations

import pytest

import crid
from crid import cli


@pytest.mark.parametrize("argv", [["--version"], ["version"]])
def test_version_answers_without_reading_the_config(
        argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    # A config file that does not exist would stop any other command with exit 2.
    assert cli.main(["--config", "/nonexistent/crid.toml", *argv]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"crid version {crid.__version__}"
    assert "RuntimeApiVersion: v1" in out
