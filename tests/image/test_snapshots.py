"""Snapshots: staging, commit, and the optional syncfs before the commit."""

from __future__ import annotations

from pathlib import Path

import pytest
from crid.image.snapshots import Snapshots
from crid.oci.linux import Syscalls

CHAIN = "sha256:" + "ab" * 32


class RecordingKernel(Syscalls):
    """Records syncfs calls and what the synced dir held then; touches nothing."""

    def __init__(self, snapshots_root: Path) -> None:
        super().__init__()
        self.root = snapshots_root
        self.synced: list[tuple[str, list[str], bool]] = []

    def syncfs(self, path: str) -> None:
        committed = any(p.name == CHAIN.removeprefix("sha256:") for p in self.root.iterdir())
        self.synced.append((path, sorted(p.name for p in Path(path).iterdir()), committed))


@pytest.mark.parametrize("sync_fs", [False, True])
def test_a_layer_is_synced_before_it_is_committed_when_asked(tmp_path: Path,
                                                              sync_fs: bool) -> None:
    kernel = RecordingKernel(tmp_path)
    snapshots = Snapshots(tmp_path, sync_fs=sync_fs, kernel=kernel).open()
    with snapshots.prepare(CHAIN) as staging:
        (staging / "file").write_text("data")
    assert (snapshots.dir(CHAIN) / "file").read_text() == "data"
    if not sync_fs:
        assert kernel.synced == []
        return
    [(path, files, committed)] = kernel.synced
    assert Path(path) == staging and files == ["file"] and not committed


def test_a_failed_unpack_is_neither_synced_nor_committed(tmp_path: Path) -> None:
    kernel = RecordingKernel(tmp_path)
    snapshots = Snapshots(tmp_path, sync_fs=True, kernel=kernel).open()
    with pytest.raises(RuntimeError), snapshots.prepare(CHAIN):
        raise RuntimeError("bad layer")
    assert kernel.synced == [] and snapshots.committed() == set()
    assert list(tmp_path.iterdir()) == []


def test_the_real_syncfs_runs(tmp_path: Path) -> None:
    snapshots = Snapshots(tmp_path, sync_fs=True).open()
    with snapshots.prepare(CHAIN) as staging:
        (staging / "file").write_text("data")
    assert snapshots.committed() == {CHAIN}


def test_a_layer_retired_again_while_an_earlier_copy_is_deleted(tmp_path: Path) -> None:
    snapshots = Snapshots(tmp_path, sync_fs=False).open()
    doomed = []
    for _ in range(2):  # pulled and removed twice; the first copy not deleted yet
        with snapshots.prepare(CHAIN) as staging:
            (staging / "file").write_text("data")
        doomed.append(snapshots.retire(CHAIN))
        assert snapshots.committed() == set() and not snapshots.exists(CHAIN)
    assert doomed[0] is not None and doomed[1] is not None and doomed[0] != doomed[1]
    assert all(d.is_dir() and d.name.startswith("tmp-rm-") for d in doomed if d)
    assert snapshots.retire(CHAIN) is None
    # What a crash left before the deletes is removed at start-up.
    Snapshots(tmp_path, sync_fs=False).open()
    assert list(tmp_path.iterdir()) == []
