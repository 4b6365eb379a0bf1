"""config.json checks: each problem is one InvalidArgument naming the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from crid.oci import config
from crid.oci.errors import InvalidArgument


def _cfg() -> dict[str, Any]:
    return {"ociVersion": "1.0.2", "root": {"path": "rootfs"},
            "process": {"args": ["sh"], "cwd": "/"},
            "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}]}}


def test_valid_bundle(tmp_path: Path) -> None:
    (tmp_path / "rootfs").mkdir()
    (tmp_path / "config.json").write_text(json.dumps(_cfg()))
    bundle, cfg, rootfs = config.load_bundle(str(tmp_path))
    assert (bundle, rootfs) == (str(tmp_path), str(tmp_path / "rootfs"))
    assert config.has_new_ns(cfg, "pid") and not config.has_new_ns(cfg, "user")


@pytest.mark.parametrize(("change", "words"), [
    (lambda c: c["process"].update(args=[]), "process.args must not be empty"),
    (lambda c: c["process"].update(args=["sh", 1]), "process.args[1] must be a string"),
    (lambda c: c["process"].update(cwd="rel"), "process.cwd must be an absolute path"),
    (lambda c: c["process"].update(terminal="yes"), "process.terminal must be a boolean"),
    (lambda c: c["process"].update(user={"uid": True}), "process.user.uid must be a number"),
    (lambda c: c["linux"]["namespaces"].append({"type": "pid"}), "duplicate namespace 'pid'"),
    (lambda c: c["linux"]["namespaces"].append({"type": "nope"}), "unknown namespace 'nope'"),
    (lambda c: c.update(hostname="h"), "hostname requires a new uts namespace"),
    (lambda c: c.update(mounts=[{"destination": "x"}]), "mounts[0].destination"),
    (lambda c: c["linux"].update(cgroupsPath="/a/../b"), "must not contain '..'"),
    (lambda c: c["linux"].update(sysctl={"a.b": 1}), "linux.sysctl[a.b] must be a string"),
    (lambda c: c.pop("root"), "root is missing"),
    (lambda c: c["linux"].update(rootfsPropagation="weird"), "unknown value 'weird'"),
    (lambda c: c["linux"].update(seccomp={"defaultAction": 3}),
     "linux.seccomp.defaultAction must be a string"),
])
def test_invalid(change: Any, words: str) -> None:
    cfg = _cfg()
    change(cfg)
    with pytest.raises(InvalidArgument) as e:
        config.validate(cfg)
    assert words in e.value.message


def test_missing_and_malformed_config(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match=r"config\.json not found"):
        config.load_bundle(str(tmp_path))
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(InvalidArgument, match="not valid JSON"):
        config.load_bundle(str(tmp_path))


def test_missing_rootfs(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(_cfg()))
    with pytest.raises(InvalidArgument, match="does not exist"):
        config.load_bundle(str(tmp_path))
