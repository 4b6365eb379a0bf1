"""crid.cdi.spec_dirs: its default, a file setting it, and what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from crid import config
from crid.errors import ConfigError


def test_cdi_spec_dirs_default_to_the_cdi_standard_dirs() -> None:
    assert config.load(None, None).cdi_spec_dirs == ("/etc/cdi", "/var/run/cdi")


def test_cdi_spec_dirs_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "crid.toml"
    path.write_text('[crid.cdi]\nspec_dirs = ["/x/cdi", "/y/cdi"]\n')
    assert config.load(path, None).cdi_spec_dirs == ("/x/cdi", "/y/cdi")
    assert 'spec_dirs = [\n    "/x/cdi",' in config.load(path, None).to_toml()


@pytest.mark.parametrize(("line", "problem"), [
    ('spec_dirs = "/etc/cdi"', "a list of strings"),
    ('spec_dirs = ["/etc/cdi", "cdi"]', "relative path"),
])
def test_bad_cdi_spec_dirs(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "crid.toml"
    path.write_text(f"[crid.cdi]\n{line}\n")
    with pytest.raises(ConfigError, match=problem) as raised:
        config.load(path, None)
    assert raised.value.key == "crid.cdi.spec_dirs"
