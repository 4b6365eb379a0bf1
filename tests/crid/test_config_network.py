from __future__ import annotations

from pathlib import Path

import pytest

from crid import config
from crid.errors import ConfigError


def test_network_settings_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "crid.toml"
    path.write_text('[crid.network]\ndefault_network = false\ndefault_bridge = "br-x"\n'
                    'default_subnet = "10.88.5.0/24"\ncni_timeout = 5\n')
    loaded = config.load(path, None)
    assert (loaded.cni_default_network, loaded.cni_default_bridge, loaded.cni_default_subnet,
            loaded.cni_timeout) == (False, "br-x", "10.88.5.0/24", 5)


@pytest.mark.parametrize(("line", "problem"), [
    ("default_network = 1", "true or false"),
    ('default_bridge = "a-name-much-too-long"', "interface name"),
    ('default_subnet = "10.88.0.0/33"', "not a subnet"),
    ("cni_timeout = 0", "must be at least 1"),
])
def test_bad_network_settings(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "crid.toml"
    path.write_text(f"[crid.network]\n{line}\n")
    with pytest.raises(ConfigError, match=problem):
        config.load(path, None)
