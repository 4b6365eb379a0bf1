"""The daemon as an operator meets it: socket, config, signals, logs, metrics."""

from __future__ import annotations

import json
import os
import platform
import signal
import socket
import stat
import subprocess
import tomllib
from pathlib import Path

import grpc
import httpx
import pytest
from cri_api.v1 import api_pb2
from prometheus_client.parser import text_string_to_metric_families

from e2e.fixtures.daemon import CRID, GRPC_FAST_PATH, CridDaemon, DaemonFactory


def conditions(daemon: CridDaemon) -> dict[str, api_pb2.RuntimeCondition]:
    status = daemon.runtime.Status(api_pb2.StatusRequest())
    return {c.type: c for c in status.status.conditions}


def test_version_names_crid_and_the_v1_api(crid_daemon: CridDaemon) -> None:
    version = crid_daemon.runtime.Version(api_pb2.VersionRequest())
    assert version.runtime_name == "crid"
    assert version.runtime_api_version == "v1"
    assert version.runtime_version
    assert version.version == "0.1.0"


def test_status_reports_runtime_ready_and_network_not_ready_without_cni(
    crid_daemon: CridDaemon,
) -> None:
    found = conditions(crid_daemon)
    assert found["RuntimeReady"].status is True
    network = found["NetworkReady"]
    assert network.status is False
    assert network.reason == "NetworkPluginNotReady"
    assert str(crid_daemon.cni_config_dir) in network.message


def test_network_ready_once_a_cni_config_exists(crid_daemon: CridDaemon) -> None:
    (crid_daemon.cni_config_dir / "10-test.conflist").write_text(json.dumps({
        "cniVersion": "1.0.0", "name": "test", "plugins": [{"type": "loopback"}],
    }))
    assert conditions(crid_daemon)["NetworkReady"].status is True


def test_status_lists_runtime_handlers_and_verbose_config(crid_daemon: CridDaemon) -> None:
    status = crid_daemon.runtime.Status(api_pb2.StatusRequest(verbose=True))
    names = [h.name for h in status.runtime_handlers]
    assert "" in names and "crid" in names  # "" is the default handler
    if Path("/usr/sbin/runc").exists():
        assert "runc" in names
    # Both runtimes know "rro"; the kernel needs mount_setattr(2).
    kernel = tuple(int(n) for n in platform.release().split("-")[0].split(".")[:2])
    rro = {h.name: h.features.recursive_read_only_mounts for h in status.runtime_handlers}
    assert rro == dict.fromkeys(names, kernel >= (5, 12))
    # Merge and Strict are both honoured (e2e/containers/test_users.py).
    assert status.features.supplemental_groups_policy
    config = json.loads(status.info["config"])
    assert config["root"] == str(crid_daemon.root)
    assert config["listen"] == str(crid_daemon.socket)


def test_runtime_config_reports_the_cgroupfs_driver(crid_daemon: CridDaemon) -> None:
    response = crid_daemon.runtime.RuntimeConfig(api_pb2.RuntimeConfigRequest())
    assert response.linux.cgroup_driver == api_pb2.CGROUPFS


def test_socket_is_a_socket_with_mode_0660(crid_daemon: CridDaemon) -> None:
    mode = crid_daemon.socket.stat().st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o660


def test_rpcs_not_built_yet_answer_unimplemented_with_their_name(
    crid_daemon: CridDaemon,
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        crid_daemon.runtime.CheckpointContainer(api_pb2.CheckpointContainerRequest())
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "CheckpointContainer" in (raised.value.details() or "")


def test_sigterm_exits_zero_and_removes_the_socket(crid_daemon: CridDaemon) -> None:
    assert crid_daemon.stop(signal.SIGTERM) == 0
    assert not crid_daemon.socket.exists()
    assert '"msg": "stopped"' in crid_daemon.stderr_text()


def test_sigint_also_drains_and_exits_zero(crid_daemon: CridDaemon) -> None:
    assert crid_daemon.stop(signal.SIGINT) == 0


def test_a_second_daemon_on_a_live_socket_is_refused(
    crid_daemon: CridDaemon, crid_factory: DaemonFactory
) -> None:
    second = crid_factory(start=False)
    second.socket = crid_daemon.socket
    result = subprocess.run(second.command(), capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert str(crid_daemon.socket) in result.stderr
    assert "another live process" in result.stderr
    # The first one is untouched and still serving.
    assert crid_daemon.runtime.Version(api_pb2.VersionRequest()).runtime_name == "crid"


def test_a_second_daemon_on_the_same_root_is_refused(
    crid_daemon: CridDaemon, crid_factory: DaemonFactory
) -> None:
    second = crid_factory(start=False)
    second.root = crid_daemon.root
    assert crid_daemon.process is not None
    owner = crid_daemon.process.pid
    result = subprocess.run(second.command(), capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert f"{crid_daemon.root} is in use by another crid (pid {owner})" in result.stderr


def test_a_stale_socket_file_is_replaced(crid_factory: DaemonFactory) -> None:
    daemon = crid_factory(start=False)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(daemon.socket))
    stale.close()  # the file stays, nobody listens: what a crashed daemon leaves
    assert daemon.socket.exists()
    daemon.start()
    assert daemon.runtime.Version(api_pb2.VersionRequest()).runtime_name == "crid"


def test_a_regular_file_at_the_socket_path_is_not_deleted(crid_factory: DaemonFactory) -> None:
    daemon = crid_factory(start=False)
    daemon.socket.write_text("precious")
    result = subprocess.run(daemon.command(), capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "is not a socket" in result.stderr
    assert daemon.socket.read_text() == "precious"


def test_an_unknown_listen_group_stops_the_start_before_anything_is_made(
    crid_factory: DaemonFactory,
) -> None:
    daemon = crid_factory(start=False)
    (daemon.config_dir / "50-group.toml").write_text(
        '[crid.api]\nlisten_group = "no-such-group-here"\n')
    result = subprocess.run(daemon.command(), capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "no group 'no-such-group-here'" in result.stderr
    assert not daemon.root.exists() and not daemon.socket.exists()


def _transport(daemon: CridDaemon) -> dict[str, str]:
    lines = [json.loads(line) for line in daemon.stderr_text().splitlines()
             if '"grpc transport"' in line]
    assert len(lines) == 1, daemon.stderr_text()
    return {"transport": lines[0]["transport"], "reason": lines[0]["reason"]}


def test_the_grpc_transport_is_the_one_the_suite_runs_on(crid_daemon: CridDaemon) -> None:
    # make e2e runs on the fast path over grpcio's core, make e2e-aio on grpc.aio.
    expected = "grpc.aio" if GRPC_FAST_PATH == "off" else "grpc-core"
    assert _transport(crid_daemon)["transport"] == expected
    assert crid_daemon.runtime.Version(api_pb2.VersionRequest()).runtime_name == "crid"


@pytest.mark.parametrize("mode", ["auto", "off"])
def test_grpc_fast_path_off_serves_every_call_alike_on_grpc_aio(
        crid_factory: DaemonFactory, mode: str) -> None:
    daemon = crid_factory(start=False)
    (daemon.config_dir / "00-grpc-fast-path.toml").write_text(
        f'[crid.api]\ngrpc_fast_path = "{mode}"\n')
    daemon.start()
    chosen = _transport(daemon)
    assert chosen["transport"] == ("grpc.aio" if mode == "off" else "grpc-core"), chosen
    assert daemon.runtime.Version(api_pb2.VersionRequest()).runtime_name == "crid"
    with pytest.raises(grpc.RpcError) as missing:
        daemon.runtime.ContainerStatus(api_pb2.ContainerStatusRequest(container_id="abc123"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert "abc123" in (missing.value.details() or "")
    listed = daemon.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest())
    assert list(listed.items) == []


def test_every_call_is_one_json_log_line(crid_daemon: CridDaemon) -> None:
    crid_daemon.runtime.Version(api_pb2.VersionRequest())
    with pytest.raises(grpc.RpcError):
        crid_daemon.runtime.ContainerStatus(
            api_pb2.ContainerStatusRequest(container_id="abc123"))
    crid_daemon.stop()
    calls = [json.loads(line) for line in crid_daemon.stderr_text().splitlines()
             if '"cri call"' in line]
    by_method = {c["method"].rsplit("/", 1)[-1]: c for c in calls}
    version = by_method["Version"]
    assert version["code"] == "OK" and version["level"] == "debug"
    assert isinstance(version["duration_ms"], float)
    status = by_method["ContainerStatus"]
    assert status["code"] == "NOT_FOUND" and status["level"] == "warning"
    assert status["container_id"] == "abc123"


def test_metrics_count_operations_and_errors(crid_daemon: CridDaemon) -> None:
    for _ in range(3):
        crid_daemon.runtime.Version(api_pb2.VersionRequest())
    with pytest.raises(grpc.RpcError):
        crid_daemon.runtime.CheckpointContainer(api_pb2.CheckpointContainerRequest())
    text = httpx.get(crid_daemon.metrics_url, timeout=10).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
    }
    # The readiness probe of the fixture called Version too, so at least 3.
    assert samples[("crid_operations_total", (("operation", "Version"),))] >= 3
    assert samples[("crid_operations_errors_total",
                    (("code", "UNIMPLEMENTED"), ("operation", "CheckpointContainer")))] == 1
    assert samples[("crid_operations_latency_seconds_count",
                    (("operation", "Version"),))] >= 3


def test_metrics_can_be_turned_off(crid_factory: DaemonFactory) -> None:
    daemon = crid_factory(extra_args=["--metrics-address", ""])
    with pytest.raises(httpx.ConnectError):
        httpx.get(daemon.metrics_url, timeout=2)
    assert '"metrics listening"' not in daemon.stderr_text()


def test_a_bad_config_exits_2_naming_file_and_key_and_touches_nothing(
    crid_factory: DaemonFactory,
) -> None:
    daemon = crid_factory(start=False)
    bad = daemon.config_dir / "20-bad.toml"
    bad.write_text('[crid.api]\nstream_port = 70000\n')
    result = subprocess.run(daemon.command(), capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert str(bad) in result.stderr
    assert "crid.api.stream_port" in result.stderr
    assert "out of range" in result.stderr
    assert not daemon.root.exists() and not daemon.runroot.exists()
    assert not daemon.socket.exists()


@pytest.mark.parametrize(("toml", "key", "problem"), [
    ('[crid]\nnot_a_key = 1\n', "crid.not_a_key", "unknown key"),
    ('[crid]\nroot = 5\n', "crid.root", "wrong type"),
    ('[crid]\nroot = "var/lib/crid"\n', "crid.root", "relative path"),
    ('[crid.metrics]\naddress = "nonsense"\n', "crid.metrics.address", "HOST:PORT"),
    ('[crid]\nlog_level = "loud"\n', "crid.log_level", "not one of"),
    ('[crid\n', "-", "not valid TOML"),
])
def test_each_kind_of_config_mistake_is_named(
    crid_factory: DaemonFactory, toml: str, key: str, problem: str
) -> None:
    daemon = crid_factory(start=False)
    daemon.config_file.write_text(toml)
    result = subprocess.run(daemon.command(), capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert f"{daemon.config_file}: {key}: " in result.stderr
    assert problem in result.stderr


def test_config_prints_defaults_files_and_flags_merged(tmp_path: Path) -> None:
    main = tmp_path / "crid.toml"
    main.write_text('[crid]\nlog_level = "warning"\n[crid.api]\nstream_port = 1000\n')
    dropins = tmp_path / "crid.d"
    dropins.mkdir()
    (dropins / "10-a.toml").write_text('[crid.api]\nstream_port = 2000\n')
    (dropins / "20-b.toml").write_text('[crid.api]\nstream_port = 3000\n')
    result = subprocess.run(
        [str(CRID), "config", "--config", str(main), "--config-dir", str(dropins),
         "--root", "/srv/crid"],
        capture_output=True, text=True, check=True,
    )
    effective = tomllib.loads(result.stdout)
    assert effective["crid"]["log_level"] == "warning"  # from the main file
    assert effective["crid"]["api"]["stream_port"] == 3000  # the last drop-in wins
    assert effective["crid"]["root"] == "/srv/crid"  # the flag wins over files
    assert effective["crid"]["runroot"] == "/run/crid"  # a default
    # What `crid config` prints is itself a valid config giving the same result.
    (tmp_path / "effective.toml").write_text(result.stdout)
    again = subprocess.run(
        [str(CRID), "config", "--config", str(tmp_path / "effective.toml"),
         "--config-dir", str(tmp_path / "empty")],
        capture_output=True, text=True,
    )
    assert again.returncode == 2  # an explicit dir that does not exist is an error
    (tmp_path / "empty").mkdir()
    again = subprocess.run(
        [str(CRID), "config", "--config", str(tmp_path / "effective.toml"),
         "--config-dir", str(tmp_path / "empty")],
        capture_output=True, text=True, check=True,
    )
    assert again.stdout == result.stdout


def test_version_command_prints_versions() -> None:
    result = subprocess.run([str(CRID), "version"], capture_output=True, text=True, check=True)
    assert result.stdout.startswith("crid version ")
    assert "RuntimeApiVersion: v1" in result.stdout


def test_flags_override_every_path_so_daemons_can_run_side_by_side(
    crid_factory: DaemonFactory,
) -> None:
    first, second = crid_factory(), crid_factory()
    assert first.socket != second.socket
    for daemon in (first, second):
        assert daemon.runtime.Version(api_pb2.VersionRequest()).runtime_name == "crid"
        assert (daemon.root / "crid.db").exists()
        assert os.path.isdir(daemon.runroot)
