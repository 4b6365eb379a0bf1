"""Every seed and every regression input goes through its fuzz target, plainly.

No atheris and no mutation here: each file of ``corpus/<target>/`` and
``regressions/<target>/`` is given to the target's ``one_input``, so a bug
that fuzzing once found (its input kept under ``regressions/``) fails
``make unit`` if it comes back, and a target that breaks on its own seeds
is caught before anyone fuzzes with it.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from tests.fuzz.run import targets

HERE = Path(__file__).resolve().parent
INPUTS = sorted(
    (target, path)
    for target in targets()
    for kind in ("corpus", "regressions")
    for path in (HERE / kind / target).glob("*")
)


def test_every_target_has_seeds() -> None:
    seeded = {target for target, path in INPUTS if path.parent.parent.name == "corpus"}
    assert seeded == set(targets())


@pytest.mark.parametrize(("target", "path"), INPUTS,
                         ids=[f"{t}/{p.parent.parent.name}/{p.name[:12]}" for t, p in INPUTS])
def test_input(target: str, path: Path) -> None:
    module = importlib.import_module(f"tests.fuzz.fuzz_{target}")
    module.one_input(path.read_bytes())
