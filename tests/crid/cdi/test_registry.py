"""The spec dirs as a set of devices: priority between dirs, ambiguity within
one, broken files, and files changed, added and removed between lookups."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from crid.oci.runtime_spec import Spec

from crid.cdi.registry import Registry
from crid.errors import InvalidArgument


def spec(kind: str = "vendor.test/dev", version: str = "0.8.0", shared: tuple[str, ...] = (),
         **devices: str) -> dict[str, Any]:
    """A spec whose devices each set one env var (name -> value)."""
    return {"cdiVersion": version, "kind": kind,
            "containerEdits": {"env": list(shared)} if shared else {},
            "devices": [{"name": n, "containerEdits": {"env": [f"DEV={v}"]}}
                        for n, v in devices.items()]}


def write(path: Path, tree: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tree if isinstance(tree, str) else json.dumps(tree))
    return path


def env_of(registry: Registry, *names: str) -> list[str]:
    oci: Spec = {"process": {"env": []}}
    registry.apply(oci, list(names))
    return list(oci["process"]["env"])


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "etc-cdi", tmp_path / "run-cdi"


def test_missing_dirs_mean_no_devices(dirs: tuple[Path, Path]) -> None:
    registry = Registry([str(d) for d in dirs])
    assert registry.devices() == []
    with pytest.raises(InvalidArgument, match=re.escape("unknown CDI device vendor.test/dev=a")):
        registry.apply({}, ["vendor.test/dev=a"])


def test_json_and_yaml_files_give_devices_other_names_are_ignored(
        dirs: tuple[Path, Path]) -> None:
    import yaml

    write(dirs[0] / "a.json", spec(a="1"))
    write(dirs[0] / "b.yaml", yaml.safe_dump(spec("other.test/gpu", b="2")))
    write(dirs[0] / "c.yml", spec("ignored.test/x", c="3"))
    write(dirs[0] / "d.json.bak", spec("ignored.test/y", d="4"))
    (dirs[0] / "sub.json").mkdir()
    write(dirs[0] / "sub.json" / "e.json", spec("ignored.test/z", e="5"))
    registry = Registry([str(d) for d in dirs])
    assert registry.devices() == ["other.test/gpu=b", "vendor.test/dev=a"]


def test_spec_edits_come_once_before_the_first_of_its_devices(dirs: tuple[Path, Path]) -> None:
    write(dirs[0] / "a.json", spec(shared=("SHARED=1",), a="a", b="b"))
    write(dirs[0] / "g.json", spec("other.test/gpu", g="g"))
    registry = Registry([str(dirs[0])])
    assert env_of(registry, "other.test/gpu=g", "vendor.test/dev=a", "vendor.test/dev=b",
                  "vendor.test/dev=a") == ["DEV=b", "SHARED=1"]
    names = [whose for whose, _ in registry.resolve(["vendor.test/dev=a", "vendor.test/dev=b"])]
    assert names == [f"vendor.test/dev=a (edits of {dirs[0] / 'a.json'})", "vendor.test/dev=a",
                     "vendor.test/dev=b"]


def test_a_later_dir_overrides_an_earlier_one(dirs: tuple[Path, Path]) -> None:
    write(dirs[0] / "a.json", spec(a="static", b="static"))
    write(dirs[1] / "z.json", spec(a="dynamic"))
    registry = Registry([str(d) for d in dirs])
    assert env_of(registry, "vendor.test/dev=a") == ["DEV=dynamic"]
    assert env_of(registry, "vendor.test/dev=b") == ["DEV=static"]


def test_one_device_in_two_files_of_one_dir_is_ambiguous(dirs: tuple[Path, Path]) -> None:
    write(dirs[0] / "a.json", spec(a="1", b="1"))
    write(dirs[0] / "b.json", spec(a="2"))
    registry = Registry([str(d) for d in dirs])
    with pytest.raises(InvalidArgument, match=re.escape(
            f"vendor.test/dev=a is ambiguous: defined in both {dirs[0] / 'a.json'} and "
            f"{dirs[0] / 'b.json'}")):
        registry.apply({}, ["vendor.test/dev=a"])
    assert env_of(registry, "vendor.test/dev=b") == ["DEV=1"]
    # ... unless a later dir settles it.
    write(dirs[1] / "c.json", spec(a="3"))
    assert env_of(registry, "vendor.test/dev=a") == ["DEV=3"]


def test_a_broken_file_gives_no_devices_and_is_named_when_one_is_missing(
        dirs: tuple[Path, Path]) -> None:
    write(dirs[0] / "good.json", spec(a="1"))
    write(dirs[0] / "bad.json", {**spec(b="1"), "surprise": True})
    registry = Registry([str(d) for d in dirs])
    assert env_of(registry, "vendor.test/dev=a") == ["DEV=1"]
    with pytest.raises(InvalidArgument) as raised:
        registry.apply({}, ["vendor.test/dev=b"])
    message = raised.value.message
    assert "unknown CDI device vendor.test/dev=b" in message
    assert f"{dirs[0] / 'bad.json'}: top level: unknown field 'surprise'" in message


def test_an_unqualified_name_is_refused_before_anything_is_read(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="fully qualified"):
        Registry([str(tmp_path)]).apply({}, ["gpu0"])


def test_files_changed_added_and_removed_are_seen_at_the_next_lookup(
        dirs: tuple[Path, Path]) -> None:
    registry = Registry([str(d) for d in dirs])
    assert registry.devices() == []
    a = write(dirs[0] / "a.json", spec(a="1"))
    assert env_of(registry, "vendor.test/dev=a") == ["DEV=1"]
    # Rewritten in place with the same size: mtime and ctime tell.
    write(a, spec(a="2"))
    assert env_of(registry, "vendor.test/dev=a") == ["DEV=2"]
    # Replaced by a rename, as tools that write atomically do.
    write(dirs[0] / ".tmp", spec(a="3", b="3"))
    os.rename(dirs[0] / ".tmp", a)
    assert registry.devices() == ["vendor.test/dev=a", "vendor.test/dev=b"]
    # Broken, then fixed.
    write(a, "{")
    assert registry.devices() == []
    write(a, spec(a="4"))
    assert env_of(registry, "vendor.test/dev=a") == ["DEV=4"]
    a.unlink()
    assert registry.devices() == []


def test_an_unchanged_dir_is_not_read_again(dirs: tuple[Path, Path],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    write(dirs[0] / "a.json", spec(a="1"))
    registry = Registry([str(d) for d in dirs])
    assert registry.devices() == ["vendor.test/dev=a"]
    reads: list[str] = []
    from crid.cdi import registry as module

    monkeypatch.setattr(module, "read", lambda path, priority: reads.append(path))
    monkeypatch.setattr(os, "scandir", lambda path: reads.append(path))
    assert env_of(registry, "vendor.test/dev=a") == ["DEV=1"]
    assert reads == []


def test_too_many_files_are_bounded_and_said(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from crid.cdi import registry as module

    monkeypatch.setattr(module, "MAX_FILES_PER_DIR", 2)
    write(tmp_path / "a.json", spec(a="a"))
    write(tmp_path / "b.json", spec(b="b"))
    write(tmp_path / "c.json", spec(c="c"))
    registry = Registry([str(tmp_path)])
    assert registry.devices() == ["vendor.test/dev=a", "vendor.test/dev=b"]
    with pytest.raises(InvalidArgument, match="holds 3 spec files; only the first 2"):
        registry.apply({}, ["vendor.test/dev=c"])
