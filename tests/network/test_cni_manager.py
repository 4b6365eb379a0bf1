"""The CNI manager's chaining and caching, with a recording fake plugin runner."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from crid.network.cni.args import PodNetwork, port_mapping
from crid.network.cni.invoke import PluginError, PluginRunner
from crid.network.cni.manager import NetworkManager, Settings, pod_ips

from crid.errors import DeadlineExceeded, FailedPrecondition

RESULT = {"cniVersion": "1.0.0",
          "interfaces": [{"name": "cni0"}, {"name": "eth0", "sandbox": "/run/x/net"}],
          "ips": [{"address": "fd00::5/64", "interface": 1},
                  {"address": "10.88.0.5/16", "interface": 1},
                  {"address": "10.88.0.1/16", "interface": 0}]}


class FakeRunner(PluginRunner):
    def __init__(self, fail: str = "", slow: bool = False) -> None:
        self.calls: list[tuple[str, str, dict[str, Any], dict[str, str]]] = []
        self.fail, self.slow = fail, slow

    async def run(self, binary: Path, env: Mapping[str, str], stdin: bytes,
                  timeout: float) -> tuple[int, bytes, bytes]:
        conf = json.loads(stdin)
        self.calls.append((binary.name, env["CNI_COMMAND"], conf, dict(env)))
        if self.slow:
            raise TimeoutError
        if binary.name == self.fail and env["CNI_COMMAND"] == "ADD":
            return 1, json.dumps({"code": 11, "msg": "no addresses left",
                                  "details": "range full"}).encode(), b""
        if env["CNI_COMMAND"] != "ADD":
            return 0, b"", b""
        if binary.name == "bridge":
            return 0, json.dumps(RESULT).encode(), b""
        return 0, json.dumps(conf.get("prevResult", {})).encode(), b""


def manager(tmp_path: Path, version: str = "1.0.0", runner: PluginRunner | None = None
            ) -> NetworkManager:
    plugins = tmp_path / "bin"
    plugins.mkdir(exist_ok=True)
    for name in ("bridge", "portmap", "bandwidth"):
        (plugins / name).write_text("")
        (plugins / name).chmod(0o755)
    conf_dir = tmp_path / "net.d"
    conf_dir.mkdir(exist_ok=True)
    (conf_dir / "10-test.conflist").write_text(json.dumps({
        "cniVersion": version, "name": "testnet", "plugins": [
            {"type": "bridge", "bridge": "br9"},
            {"type": "portmap", "capabilities": {"portMappings": True}},
            {"type": "bandwidth", "capabilities": {"bandwidth": True}},
        ]}))
    return NetworkManager(Settings(conf_dir=conf_dir, plugin_dirs=(str(plugins),),
                                   cache_dir=tmp_path / "cache", write_default=False),
                          runner or FakeRunner())


POD = PodNetwork(id="pod1", name="web", namespace="prod", uid="u1", netns="/run/x/net",
                 port_mappings=[port_mapping("TCP", 80, 8080, "")])


def test_add_chains_prev_result_and_capability_args(tmp_path: Path) -> None:
    runner = FakeRunner()
    attachment = asyncio.run(manager(tmp_path, runner=runner).add(POD))
    assert attachment.ips == ("10.88.0.5", "fd00::5")  # the gateway is not the pod's
    names = [(c[0], c[1]) for c in runner.calls]
    assert names == [("bridge", "ADD"), ("portmap", "ADD"), ("bandwidth", "ADD")]
    bridge, portmap, bandwidth = (c[2] for c in runner.calls)
    assert "prevResult" not in bridge and "runtimeConfig" not in bridge
    assert portmap["prevResult"] == RESULT and portmap["name"] == "testnet"
    assert portmap["runtimeConfig"] == {"portMappings": [
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}
    assert "runtimeConfig" not in bandwidth  # no bandwidth annotations
    env = runner.calls[0][3]
    assert env["CNI_NETNS"] == "/run/x/net" and env["CNI_IFNAME"] == "eth0"
    assert env["CNI_CONTAINERID"] == "pod1" and "K8S_POD_UID=u1" in env["CNI_ARGS"]


def test_del_uses_the_cached_config_and_result_in_reverse(tmp_path: Path) -> None:
    runner = FakeRunner()
    mgr = manager(tmp_path, runner=runner)
    asyncio.run(mgr.add(POD))
    # The conf dir changes after ADD; DEL still uses what ADD used.
    (tmp_path / "net.d" / "10-test.conflist").unlink()
    runner.calls.clear()
    asyncio.run(mgr.delete(POD))
    assert [(c[0], c[1]) for c in runner.calls] == [
        ("bandwidth", "DEL"), ("portmap", "DEL"), ("bridge", "DEL")]
    assert all(c[2]["prevResult"]["ips"] == RESULT["ips"] for c in runner.calls)
    assert mgr.cache.get("pod1") is None


def test_old_versions_get_no_prev_result_on_del_and_no_check(tmp_path: Path) -> None:
    runner = FakeRunner()
    mgr = manager(tmp_path, version="0.3.1", runner=runner)
    asyncio.run(mgr.add(POD))
    runner.calls.clear()
    asyncio.run(mgr.check(POD))
    assert runner.calls == []
    asyncio.run(mgr.delete(POD))
    assert all("prevResult" not in c[2] for c in runner.calls)


def test_check_runs_every_plugin_with_the_result(tmp_path: Path) -> None:
    runner = FakeRunner()
    mgr = manager(tmp_path, runner=runner)
    asyncio.run(mgr.add(POD))
    runner.calls.clear()
    asyncio.run(mgr.check(POD))
    assert [c[1] for c in runner.calls] == ["CHECK"] * 3
    assert runner.calls[0][2]["prevResult"] == RESULT


def test_failed_add_reports_the_plugin_message_and_undoes(tmp_path: Path) -> None:
    runner = FakeRunner(fail="portmap")
    mgr = manager(tmp_path, runner=runner)
    with pytest.raises(PluginError, match=r"portmap failed on ADD: no addresses left \(range full"):
        asyncio.run(mgr.add(POD))
    assert [(c[0], c[1]) for c in runner.calls] == [
        ("bridge", "ADD"), ("portmap", "ADD"), ("portmap", "DEL"), ("bridge", "DEL")]
    assert mgr.cache.get("pod1") is None


def test_timeout(tmp_path: Path) -> None:
    with pytest.raises(DeadlineExceeded, match="bridge did not finish ADD"):
        asyncio.run(manager(tmp_path, runner=FakeRunner(slow=True)).add(POD))


def test_not_ready_without_config_then_ready_when_one_appears(tmp_path: Path) -> None:
    mgr = manager(tmp_path)
    conf = tmp_path / "net.d" / "10-test.conflist"
    text = conf.read_text()
    conf.unlink()
    assert "no valid CNI network configuration" in (mgr.not_ready_reason() or "")
    with pytest.raises(FailedPrecondition):
        asyncio.run(mgr.add(POD))
    conf.write_text(text)
    assert mgr.not_ready_reason() is None


def test_default_network_written_only_into_an_empty_dir(tmp_path: Path) -> None:
    conf_dir = tmp_path / "empty"
    settings = Settings(conf_dir=conf_dir, plugin_dirs=(), cache_dir=tmp_path / "c",
                        default_bridge="brx", default_subnet="10.88.7.0/24")
    NetworkManager(settings).start()
    written = json.loads((conf_dir / "10-crid-bridge.conflist").read_text())
    assert written["plugins"][0]["bridge"] == "brx"
    off = Settings(conf_dir=tmp_path / "off", plugin_dirs=(), cache_dir=tmp_path / "c",
                   write_default=False)
    NetworkManager(off).start()
    assert not (tmp_path / "off").exists()


def test_pod_ips_of_a_0_3_result() -> None:
    result = {"cniVersion": "0.3.1", "ips": [{"version": "4", "address": "10.1.0.9/24"}]}
    assert pod_ips(result) == ("10.1.0.9",)


def test_watch_picks_up_a_config_without_being_asked(tmp_path: Path) -> None:
    mgr = manager(tmp_path)
    conf = tmp_path / "net.d" / "10-test.conflist"
    text = conf.read_text()
    conf.unlink()
    assert mgr.network() is None

    async def scenario() -> str | None:
        watcher = asyncio.create_task(mgr.watch(interval=0.01))
        conf.write_text(text)
        for _ in range(100):
            await asyncio.sleep(0.01)
            if mgr.current is not None:
                break
        watcher.cancel()
        return mgr.current.name if mgr.current else None

    assert asyncio.run(scenario()) == "testnet"


def test_an_attachment_whose_result_cannot_be_kept_is_released(tmp_path: Path) -> None:
    """A full disk (or any failed write) of the result cache after a good ADD:
    without the result no later DEL could release the IP, veth and rules, so
    the ADD is undone at once and no half-written entry is left."""
    runner = FakeRunner()
    mgr = manager(tmp_path, runner=runner)

    def full_disk(pod_id: str, entry: object) -> None:
        mgr.cache.temp_path(pod_id).parent.mkdir(parents=True, exist_ok=True)
        mgr.cache.temp_path(pod_id).write_text("{")
        raise OSError(28, "No space left on device")

    mgr.cache.put = full_disk  # type: ignore[method-assign]
    with pytest.raises(OSError, match="No space"):
        asyncio.run(mgr.add(POD))
    assert [(c[0], c[1]) for c in runner.calls] == [
        ("bridge", "ADD"), ("portmap", "ADD"), ("bandwidth", "ADD"),
        ("bandwidth", "DEL"), ("portmap", "DEL"), ("bridge", "DEL")]
    assert runner.calls[-1][2]["prevResult"]["ips"] == RESULT["ips"]
    assert not mgr.cache.temp_path("pod1").exists() and mgr.cache.get("pod1") is None
