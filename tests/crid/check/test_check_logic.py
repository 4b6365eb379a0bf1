"""``crid check``'s pure parts: reading the store read-only, cgroups in a fake
layout, iptables comments, the cross-root conf, the output and the CLI's codes.
The kernel side (pins, mounts, conmons, real cgroups) is in e2e/check."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest
from crid.image import schema as image_schema
from crid.network.cni.manager import DEFAULT_FILE, Settings

from crid import cli, logs
from crid.check import cgroups, firewall, network, view
from crid.check.findings import Finding, to_json, to_text
from crid.config import Config
from crid.containers import schema as container_schema
from crid.sandbox import schema as sandbox_schema
from crid.store import Store

POD = "a" * 64
OTHER = "b" * 64
CONTAINER = "c" * 64


def config(tmp_path: Path, **fields: object) -> Config:
    return Config(root=str(tmp_path / "root"), runroot=str(tmp_path / "run"),
                  cgroup_parent="/crid-test", **fields)  # type: ignore[arg-type]


def empty_view(tmp_path: Path, pods: tuple[str, ...] = (), containers: tuple[str, ...] = (),
               pod_cgroup: str = "") -> view.View:
    return view.View(
        config(tmp_path),
        {p: view.Pod(p, "ready", "", {}, pod_cgroup or f"/crid-test/crid-{p}", True)
         for p in pods},
        {c: view.Container(c, pods[0], "running", "crid", 0, "", "") for c in containers},
        frozenset(), frozenset(), frozenset())


def make_store(root: Path) -> Store:
    root.mkdir(exist_ok=True)
    return Store(root / view.DATABASE, migrations={
        "image": image_schema.MIGRATIONS, "sandbox": sandbox_schema.MIGRATIONS,
        "containers": container_schema.MIGRATIONS}).open()


def test_the_store_is_read_read_only_and_closed_cleanly(tmp_path: Path) -> None:
    db = tmp_path / "root" / view.DATABASE
    store = make_store(tmp_path / "root")
    with store.transaction() as tx:
        tx.execute("INSERT INTO sandboxes VALUES (?, 'n', 'ns', 'u', 0, 'ready', 1, '', x'',"
                   " '/p', ?, '', '/crid-test/x', '{}', '[]', 0, 1)",
                   (POD, json.dumps({"net": "/p/net"})))
        tx.execute("INSERT INTO images (id, manifest_digest, config, chain_ids, blobs, size,"
                   " username, created_ns) VALUES ('i', 'm', '{}', ?, ?, 0, '', 0)",
                   (json.dumps(["sha256:" + "1" * 64]), json.dumps(["sha256:" + "2" * 64])))
    store.close()  # a cleanly stopped daemon: no -wal or -shm left
    before = db.read_bytes()
    seen = view.load(config(tmp_path))
    assert seen.pods[POD].namespaces == {"net": "/p/net"}
    assert seen.image_chains == {"sha256:" + "1" * 64}
    assert seen.image_blobs == {"sha256:" + "2" * 64}
    assert db.read_bytes() == before
    # SQLite may make the -shm/-wal companions a WAL reader needs; never looser than the file.
    for path in db.parent.iterdir():
        assert path.stat().st_mode & 0o777 == 0o600, path


def test_no_store_yet_is_an_empty_one(tmp_path: Path) -> None:
    seen = view.load(config(tmp_path))
    assert (dict(seen.pods), dict(seen.containers)) == ({}, {})
    assert not (tmp_path / "root").exists()


def test_a_held_lock_refuses_the_repair(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    lock = root / view.LOCK_FILE
    lock.write_text("1")
    with view.exclusive(root) as held:
        assert held
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as the daemon holds it
        with view.exclusive(root) as held:
            assert not held
    finally:
        os.close(fd)


def make_cgroups(tmp_path: Path, *paths: str) -> dict[str, str]:
    mounts = {"memory": str(tmp_path / "cg" / "memory"), "": str(tmp_path / "cg" / "unified")}
    for mount in mounts.values():
        for path in paths:
            (Path(mount) / path.lstrip("/")).mkdir(parents=True, exist_ok=True)
    return mounts


def test_cgroups_without_a_pod_or_container(tmp_path: Path) -> None:
    mounts = make_cgroups(
        tmp_path, f"/crid-test/crid-{POD}/{CONTAINER}", f"/crid-test/crid-{POD}/{OTHER}",
        f"/crid-test/crid-{OTHER}/{CONTAINER}", "/crid-test/not-crids")
    found = cgroups.find(empty_view(tmp_path, pods=(POD,), containers=(CONTAINER,)), mounts)
    assert [(f.kind, f.subject) for f in found] == [
        ("cgroup-without-pod", f"/crid-test/crid-{OTHER}"),  # what is below goes with it
        ("cgroup-without-container", f"/crid-test/crid-{POD}/{OTHER}"),
    ]
    assert found[0].detail.endswith("in memory, unified")
    assert all(f.repair is not None for f in found)


def test_a_pod_cgroup_kubelet_placed_is_looked_into(tmp_path: Path) -> None:
    mounts = make_cgroups(tmp_path, f"/kubepods/pod1/{OTHER}")
    seen = empty_view(tmp_path, pods=(POD,), pod_cgroup="/kubepods/pod1")
    assert [f.subject for f in cgroups.find(seen, mounts)] == [f"/kubepods/pod1/{OTHER}"]


def settings(tmp_path: Path, network_name: str = "crid") -> Settings:
    conf_dir = tmp_path / "net.d"
    conf_dir.mkdir(exist_ok=True)
    (conf_dir / "10-x.conflist").write_text(json.dumps(
        {"cniVersion": "1.0.0", "name": network_name, "plugins": [{"type": "bridge"}]}))
    return Settings(conf_dir=conf_dir, plugin_dirs=(), cache_dir=tmp_path / "results")


RULES = (
    '-A POSTROUTING -s 10.88.0.2/32 -m comment --comment "name: \\"crid\\" id: \\"{}\\"" '
    '-j CNI-1\n'
)


def test_iptables_rules_of_pods_with_no_row(tmp_path: Path) -> None:
    cached = "d" * 64
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / f"{cached}.json").write_text(json.dumps({"network": "crid"}))
    other_network = RULES.format(OTHER).replace('\\"crid\\"', '\\"theirs\\"')
    dump = RULES.format(POD) + RULES.format(OTHER) * 2 + RULES.format(cached) + other_network
    third = "e" * 64  # a pod this crid holds no trace of: maybe another crid's
    dump += RULES.format(third)
    found = firewall.find(empty_view(tmp_path, pods=(POD,)), settings(tmp_path),
                          lambda _pod: lambda: None, lambda pod: pod != third, dumps=[dump])
    assert [(f.kind, f.subject) for f in found] == [("iptables-without-pod", OTHER)]
    assert found[0].detail.startswith("2 rule(s) of network crid")


@pytest.mark.parametrize(("data_dir", "whose"), [
    ("/var/lib/other/cni/networks", "another root's"), ("{root}/cni/networks", "this root's"),
    (None, None)])
def test_a_default_conf_naming_a_root(tmp_path: Path, data_dir: str | None,
                                      whose: str | None) -> None:
    seen = empty_view(tmp_path)
    ipam: dict[str, str] = {"type": "host-local"}
    if data_dir:
        ipam["dataDir"] = data_dir.format(root=seen.root)
    conf = settings(tmp_path)
    (conf.conf_dir / DEFAULT_FILE).write_text(json.dumps(
        {"name": "crid", "plugins": [{"type": "bridge", "ipam": ipam}]}))
    found = [f for f in network.find(seen, conf) if f.kind == network.CROSS_ROOT]
    assert [f"names {whose} dir" in f.detail for f in found] == ([True] if whose else [])
    assert all(f.repair is None for f in found)


def test_output_one_line_per_finding_and_json() -> None:
    found = [Finding("k", "s", "d", lambda: None), Finding("k2", "s2", "d2")]
    assert to_text(found) == "k\ts\td\nk2\ts2\td2\n"
    tree = json.loads(to_json(found, [{"kind": "k", "subject": "s", "did": "x"}]))
    assert tree["clean"] is False
    assert [f["repairable"] for f in tree["findings"]] == [True, False]
    assert tree["repaired"] == [{"kind": "k", "subject": "s", "did": "x"}]
    assert json.loads(to_json([])) == {"clean": True, "findings": []}


def cli_args(tmp_path: Path) -> list[str]:
    (tmp_path / "crid.d").mkdir(exist_ok=True)
    return ["--config", "/dev/null", "--config-dir", str(tmp_path / "crid.d"),
            "--root", str(tmp_path / "root"), "--runroot", str(tmp_path / "run"),
            "--cni-config-dir", str(tmp_path / "net.d"), "--cgroup-parent", "/crid-unit-test"]


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                       monkeypatch: pytest.MonkeyPatch) -> None:
    # The logger would keep the captured stderr, closed once this test ends.
    monkeypatch.setattr(logs, "configure", lambda _level: None)
    assert cli.main(["check", *cli_args(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"clean": True, "findings": []}
    # No store: nothing to repair against (everything would look leaked).
    assert cli.main(["check", *cli_args(tmp_path), "--repair"]) == 2
    assert "no whole store" in capsys.readouterr().err
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / view.DATABASE).write_bytes(b"")  # truncated
    assert cli.main(["check", *cli_args(tmp_path)]) == 1
    assert capsys.readouterr().out.startswith("check-failed\t")
    (tmp_path / "root" / view.DATABASE).unlink()
    make_store(tmp_path / "root").close()
    exits = tmp_path / "run" / "exits"
    exits.mkdir(parents=True)
    (exits / POD).write_text("0")
    assert cli.main(["check", *cli_args(tmp_path)]) == 1
    assert capsys.readouterr().out.startswith("exit-file-without-container\t")
    assert cli.main(["check", *cli_args(tmp_path), "--repair"]) == 0
    assert "repaired\texit-file-without-container" in capsys.readouterr().out
    assert not (exits / POD).exists()
    assert cli.main(["check", *cli_args(tmp_path), "--root", "relative"]) == 2
