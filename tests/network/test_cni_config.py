from __future__ import annotations

import json
from pathlib import Path

import pytest
from crid.network.cni import config


def test_conflist_and_single_conf() -> None:
    listed = config.parse(json.dumps({"cniVersion": "0.3.1", "name": "n",
                                      "plugins": [{"type": "bridge"}, {"type": "portmap"}]}))
    assert [p["type"] for p in listed.plugins] == ["bridge", "portmap"]
    assert not listed.has_check and not listed.passes_prev_result_to_del
    single = config.parse(json.dumps({"cniVersion": "1.0.0", "name": "n", "type": "ptp",
                                      "ipam": {"type": "host-local"}}))
    assert single.plugins == [{"type": "ptp", "ipam": {"type": "host-local"}}]
    assert single.has_check and single.passes_prev_result_to_del


@pytest.mark.parametrize(("text", "problem"), [
    ("{", "not valid JSON"),
    ('{"cniVersion": "1.0.0", "plugins": [{"type": "x"}]}', "no name"),
    ('{"cniVersion": "0.2.0", "name": "n", "plugins": [{"type": "x"}]}', "not supported"),
    ('{"cniVersion": "1.0.0", "name": "n", "plugins": []}', "non-empty"),
    ('{"cniVersion": "1.0.0", "name": "n", "plugins": [{}]}', "type"),
])
def test_invalid_configs(text: str, problem: str) -> None:
    with pytest.raises(config.ConfigProblem, match=problem):
        config.parse(text)


def test_load_first_is_lexical_and_skips_broken_files(tmp_path: Path) -> None:
    good = {"cniVersion": "1.0.0", "name": "second", "plugins": [{"type": "bridge"}]}
    (tmp_path / "10-broken.conflist").write_text("{")
    (tmp_path / "20-good.conflist").write_text(json.dumps(good))
    (tmp_path / "30-other.conf").write_text(json.dumps({**good, "name": "third"}))
    (tmp_path / "05-ignored.txt").write_text("x")
    network, problems = config.load_first(tmp_path)
    assert network is not None and network.name == "second"
    assert len(problems) == 1 and "10-broken" in problems[0]
    assert config.load_first(tmp_path / "missing") == (None, [])


def test_default_network_shape() -> None:
    tree = config.default_network("crid", "crid0", "10.88.0.0/16")
    network = config.parse(json.dumps(tree))
    assert [p["type"] for p in network.plugins] == ["bridge", "portmap"]
    assert network.plugins[0]["ipam"]["ranges"] == [[{"subnet": "10.88.0.0/16"}]]
    # Shared conf dir, shared reservations: no one crid's root in the file (issue 20 item 5).
    assert "dataDir" not in network.plugins[0]["ipam"]
    assert network.plugins[1]["capabilities"] == {"portMappings": True}
