"""Hooks under a deadline: the daemon runs poststart and poststop on a worker
thread, and a hook with no timeout of its own must not hold it for ever."""

from __future__ import annotations

import time

import pytest
from crid.oci import hooks
from crid.oci.errors import CridError
from crid.oci.runtime_spec import Hook, HookName, Hooks, Spec, State

STATE: State = {"ociVersion": "1.0.2", "id": "c", "status": "running", "pid": 1,
                "bundle": "/nowhere"}


def sleeping(stage: HookName, timeout: int | None = None) -> Spec:
    hook: Hook = {"path": "/bin/sleep", "args": ["sleep", "5"]}
    if timeout is not None:
        hook["timeout"] = timeout
    staged: Hooks = {}
    staged[stage] = [hook]
    return {"hooks": staged}


def test_a_deadline_cuts_a_hook_without_a_timeout_and_warns() -> None:
    warned: list[str] = []
    began = time.monotonic()
    hooks.run(sleeping("poststop"), "poststop", STATE, deadline=began + 0.2, warn=warned.append)
    assert time.monotonic() - began < 2
    assert len(warned) == 1 and "poststop hook /bin/sleep failed: timed out" in warned[0]


def test_a_deadline_cuts_a_longer_timeout_of_a_fatal_stage() -> None:
    began = time.monotonic()
    with pytest.raises(CridError, match="startContainer hook /bin/sleep failed: timed out"):
        hooks.run(sleeping("startContainer", timeout=30), "startContainer", STATE,
                  deadline=began + 0.2)
    assert time.monotonic() - began < 2


def test_without_a_deadline_the_hook_keeps_its_own_timeout(capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    began = time.monotonic()
    hooks.run(sleeping("poststart", timeout=1), "poststart", STATE)
    assert 0.9 < time.monotonic() - began < 4
    assert "crid-runtime: warning: poststart hook /bin/sleep failed: timed out after 1s" in \
        capsys.readouterr().err
