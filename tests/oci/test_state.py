"""crid-runtime's state files: the spec (env: secrets) they hold is root's only."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from crid.oci import state


def test_state_and_pid_files_are_owner_only_from_their_creation(tmp_path: Path) -> None:
    (tmp_path / "c1").mkdir()
    (tmp_path / "c1" / ".state.json.tmp").touch(0o644)  # a leftover of a killed write
    old = os.umask(0)
    try:
        state.save(str(tmp_path), "c1", {"id": "c1", "pid": 0, "bundle": "", "config": {
            "process": {"env": ["TOKEN=secret"]}}})
        state.write_pid_file(str(tmp_path / "pidfile"), 42)
    finally:
        os.umask(old)
    saved = tmp_path / "c1" / state.STATE_FILE
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "pidfile").stat().st_mode) == 0o600
    assert state.load(str(tmp_path), "c1")["config"]["process"]["env"] == ["TOKEN=secret"]
    assert sorted(p.name for p in (tmp_path / "c1").iterdir()) == [state.STATE_FILE]
