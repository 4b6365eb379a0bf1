"""The lock files agree with setup.cfg: every requirement is pinned, with hashes,
at a version its range admits, and the test lock pins the runtime lock's versions.

A range changed in setup.cfg without `make lock` fails here, before CI installs
something other than what setup.cfg says."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

TOP = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s\\]+)")


def _setup_requirements(section: str, key: str) -> list[Requirement]:
    parser = configparser.ConfigParser()
    parser.read(TOP / "setup.cfg")
    lines = parser[section][key].splitlines()
    return [Requirement(line) for line in (raw.split("#")[0].strip() for raw in lines) if line]


def _pins(lock: str) -> dict[str, tuple[Version, int]]:
    """name -> (pinned version, how many hashes follow it)."""
    pins: dict[str, tuple[Version, int]] = {}
    current = ""
    for line in (TOP / lock).read_text().splitlines():
        found = PIN.match(line)
        if found:
            current = canonicalize_name(found[1])
            pins[current] = (Version(found[2]), 0)
        elif line.strip().startswith("--hash=sha256:") and current:
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
    return pins


RUNTIME = _setup_requirements("options", "install_requires")
TEST = _setup_requirements("options.extras_require", "test")


@pytest.mark.parametrize(("lock", "requirements"), [
    ("requirements.txt", RUNTIME), ("requirements-test.txt", RUNTIME + TEST)])
def test_every_requirement_is_pinned_within_its_range(
        lock: str, requirements: list[Requirement]) -> None:
    pins = _pins(lock)
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in {lock}: run make lock"
        version, _ = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), \
            f"{lock} pins {name}=={version}, outside setup.cfg's {requirement}: run make lock"


@pytest.mark.parametrize("lock", ["requirements.txt", "requirements-test.txt"])
def test_every_pin_carries_hashes(lock: str) -> None:
    pins = _pins(lock)
    assert pins
    assert [name for name, (_, hashes) in pins.items() if hashes == 0] == []


def test_the_test_lock_installs_what_the_runtime_lock_pins() -> None:
    runtime, test = _pins("requirements.txt"), _pins("requirements-test.txt")
    assert {name: test.get(name, (None, 0))[0] for name in runtime} == \
        {name: version for name, (version, _) in runtime.items()}


def test_stubs_match_their_libraries() -> None:
    # types-protobuf 7 on protobuf 6 broke a fresh clone's lint once.
    pins = _pins("requirements-test.txt")
    for library, stubs in (("protobuf", "types-protobuf"), ("grpcio", "types-grpcio"),
                           ("pyyaml", "types-pyyaml")):
        assert pins[stubs][0].major == pins[library][0].major, (library, stubs)
