"""A new (missing or empty) state database is refused while the node holds state."""

from __future__ import annotations

from pathlib import Path

import pytest

from crid.lost_state import refuse_if_lost
from crid.store import Store, StoreUnusable


def test_an_empty_store_with_pod_dirs_and_bundles_is_refused(tmp_path: Path) -> None:
    pods, bundles, layers = tmp_path / "pods", tmp_path / "containers", tmp_path / "snapshots"
    for made in (pods / "p1", pods / "p2", bundles / "c1", layers / "tmp-unfinished"):
        made.mkdir(parents=True)
    (tmp_path / "crid.db").touch()  # truncated to nothing
    store = Store(tmp_path / "crid.db").open()
    with pytest.raises(StoreUnusable) as caught:
        refuse_if_lost(store, (pods, bundles, layers, tmp_path / "exits"), tmp_path)
    message = caught.value.message
    assert f"{tmp_path / 'crid.db'} is missing or empty" in message
    assert f"{pods} (2)" in message and f"{bundles} (1)" in message
    assert str(layers) not in message  # a layer being unpacked is no state
    assert "Restore the file" in message


def test_an_empty_store_on_an_empty_node_is_a_first_start(tmp_path: Path) -> None:
    (tmp_path / "pods").mkdir()
    (tmp_path / "snapshots" / "tmp-x").mkdir(parents=True)
    store = Store(tmp_path / "crid.db").open()
    refuse_if_lost(store, (tmp_path / "pods", tmp_path / "snapshots", tmp_path / "none"),
                   tmp_path)


def test_a_used_store_is_not_second_guessed(tmp_path: Path) -> None:
    Store(tmp_path / "crid.db").open().close()
    (tmp_path / "pods" / "p1").mkdir(parents=True)
    store = Store(tmp_path / "crid.db").open()
    refuse_if_lost(store, (tmp_path / "pods",), tmp_path)
