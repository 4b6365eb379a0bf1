"""The CNI result cache: what a crash mid-write leaves goes with the entry."""

from __future__ import annotations

from pathlib import Path

from crid.network.cni.cache import Entry, ResultCache

ENTRY = Entry(network="crid", config="{}", ifname="eth0", cni_args="", capability_args={},
              result={"cniVersion": "1.0.0"})


def test_put_get_delete(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path / "results")
    cache.put("pod", ENTRY)
    assert cache.get("pod") == ENTRY
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["pod.json"]
    cache.delete("pod")
    assert cache.get("pod") is None
    cache.delete("pod")  # twice is fine


def test_delete_removes_a_write_cut_off_by_a_crash(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path)
    cache.temp_path("pod").write_text('{"network": "cri')  # killed before the rename
    assert cache.get("pod") is None
    cache.delete("pod")
    assert list(tmp_path.iterdir()) == []
