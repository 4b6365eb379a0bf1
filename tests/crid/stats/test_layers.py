"""Writable-layer usage: a real directory tree measured, and the cache."""

from __future__ import annotations

import os
from pathlib import Path

from crid.stats.layers import LayerCache, measure


def test_measure_counts_allocated_blocks_and_each_inode_once(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "a" / "b").mkdir(parents=True)
    data = upper / "a" / "b" / "data"
    data.write_bytes(os.urandom(1024 * 1024))
    os.link(data, upper / "hardlink")
    (upper / "link").symlink_to("/etc")
    used, inodes = measure(upper)
    assert inodes == 4  # a, b, data (once for both its names), link
    assert used >= 1024 * 1024
    assert used < 2 * 1024 * 1024  # the hard link is not counted twice


def test_a_missing_layer_measures_zero(tmp_path: Path) -> None:
    assert measure(tmp_path / "gone") == (0, 0)


def test_the_cache_answers_from_the_last_refresh(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    upper.mkdir()
    cache = LayerCache(lambda: [("c1", upper)], now_ns=lambda: 42, interval=1)
    assert cache.get("c1") is None
    (upper / "f").write_bytes(b"x" * 10000)
    cache.refresh()
    found = cache.get("c1")
    assert found is not None and found.used_bytes >= 10000 and found.at_ns == 42
    (upper / "g").write_bytes(b"x" * 10000)
    assert cache.get("c1") == found  # no walk until the next refresh


def test_one_layer_is_measured_without_a_pass(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    upper.mkdir()
    (upper / "f").write_bytes(b"x" * 10000)
    cache = LayerCache(lambda: [], now_ns=lambda: 7, interval=1)
    cache.measure_one("new", upper)
    found = cache.get("new")
    assert found is not None and found.inodes == 1 and found.at_ns == 7
