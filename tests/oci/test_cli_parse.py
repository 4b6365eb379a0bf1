"""The runc-style flag parser, signal names, sizes, and ids."""

from __future__ import annotations

import pytest
from crid.oci import state
from crid.oci.context import parse
from crid.oci.errors import InvalidArgument
from crid.oci.verbs.kill import parse_signal
from crid.oci.verbs.update import from_flags, size

SPEC = {"--bundle": "bundle:str", "-b": "bundle:str", "--detach": "detach:bool",
        "--env": "env:list", "--preserve-fds": "n:int"}


def test_flags_in_every_spelling() -> None:
    a = parse(["-b", "/b", "--env=A=1", "--env", "B=2", "-detach", "--preserve-fds", "2", "id"],
              SPEC)
    assert a.flags == {"bundle": "/b", "env": ["A=1", "B=2"], "detach": True, "n": 2}
    assert a.pos == ["id"]


def test_stop_after_positionals_keeps_command_flags() -> None:
    a = parse(["--detach", "id", "sh", "-c", "echo --bundle"], SPEC, stop_after=1)
    assert a.pos == ["id", "sh", "-c", "echo --bundle"]


def test_unknown_flag() -> None:
    with pytest.raises(InvalidArgument, match="flag provided but not defined: --nope"):
        parse(["--nope"], SPEC)


def test_missing_value_and_bad_int() -> None:
    with pytest.raises(InvalidArgument):
        parse(["--bundle"], SPEC)
    with pytest.raises(InvalidArgument):
        parse(["--preserve-fds", "x"], SPEC)


@pytest.mark.parametrize(("raw", "num"), [("KILL", 9), ("SIGTERM", 15), ("hup", 1), ("10", 10)])
def test_signals(raw: str, num: int) -> None:
    assert parse_signal(raw) == num


def test_bad_signal() -> None:
    with pytest.raises(InvalidArgument):
        parse_signal("SIGNOPE")


@pytest.mark.parametrize(("raw", "n"), [("50M", 50 * 1024**2), ("1g", 1024**3), ("123", 123),
                                        ("-1", -1), ("2kb", 2048)])
def test_sizes(raw: str, n: int) -> None:
    assert size(raw) == n


def test_update_flags_to_resources() -> None:
    assert from_flags({"memory": "1M", "cpu_shares": 100, "pids_limit": 5}) == {
        "memory": {"limit": 1024**2}, "cpu": {"shares": 100}, "pids": {"limit": 5}}


@pytest.mark.parametrize("cid", ["", ".", "..", "a/b", "a b", "ü"])
def test_bad_ids(cid: str) -> None:
    with pytest.raises(InvalidArgument):
        state.check_id(cid)


def test_good_id() -> None:
    state.check_id("abc-DEF_1.2+3")
