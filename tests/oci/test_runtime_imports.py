"""crid-runtime's verbs load no more of the standard library than they need.

Every container's create, start, kill and delete (and every exec) starts a
fresh interpreter, so a module imported on their path costs each of them:
``contextlib`` pulled in through ``crid.errors`` once cost 3 ms per verb.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

# Each costs a millisecond or more to import and the verbs below don't need it.
HEAVY = {"contextlib", "collections", "functools", "typing", "json", "re", "enum"}


@pytest.mark.parametrize("verb", ["create", "start", "kill", "delete", "exec"])
def test_a_verb_imports_nothing_heavy(verb: str) -> None:
    code = ("import sys; before = set(sys.modules)\n"
            f"import crid.oci.cli, crid.oci.verbs.{verb}\n"
            "print(*sorted(set(sys.modules) - before))\n")
    out = subprocess.run([sys.executable, "-IS", "-c", "import sys; sys.path[:0] = "
                          f"{sys.path!r}; exec({code!r})"],
                         capture_output=True, text=True, check=True).stdout
    assert not HEAVY & set(out.split()), out
