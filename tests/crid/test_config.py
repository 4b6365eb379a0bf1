"""Config loading: precedence, validation messages, handlers, TOML output."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from crid import config
from crid.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def load(tmp_path: Path, main: str = "", **overrides: object) -> config.Config:
    (tmp_path / "crid.d").mkdir(exist_ok=True)
    return config.load(write(tmp_path / "crid.toml", main), tmp_path / "crid.d", overrides)


def test_defaults_match_the_design(tmp_path: Path) -> None:
    loaded = load(tmp_path)
    assert loaded.listen == "/run/crid/crid.sock"
    assert loaded.root == "/var/lib/crid"
    assert loaded.runroot == "/run/crid"
    assert loaded.metrics_address == "127.0.0.1:9090"
    assert loaded.cni_plugin_dirs == ("/opt/cni/bin", "/usr/lib/cni")
    assert loaded.handler("").name == "crid"  # type: ignore[union-attr]


def test_streaming_limits_default_to_kubelets_and_can_be_set(tmp_path: Path) -> None:
    defaults = load(tmp_path)
    assert (defaults.stream_creation_timeout, defaults.stream_idle_timeout) == (30, 14400)
    assert defaults.stream_websocket_max_message == 32 * 1024 * 1024
    loaded = load(tmp_path, "[crid.streaming]\nstream_idle_timeout = 1\nmax_handshakes = 8\n"
                            "max_streams_per_connection = 5\ndial_workers = 2\n")
    assert (loaded.stream_idle_timeout, loaded.stream_max_handshakes) == (1, 8)
    assert (loaded.stream_max_streams_per_connection, loaded.stream_dial_workers) == (5, 2)


def test_drop_ins_override_the_main_file_in_lexical_order(tmp_path: Path) -> None:
    write(tmp_path / "crid.d" / "20-b.toml", '[crid]\nlog_level = "error"\n')
    write(tmp_path / "crid.d" / "10-a.toml", '[crid]\nlog_level = "debug"\nroot = "/a"\n')
    write(tmp_path / "crid.d" / "ignored.conf", "not toml at all [")
    loaded = load(tmp_path, '[crid]\nlog_level = "warning"\nrunroot = "/r"\n')
    assert loaded.log_level == "error"
    assert loaded.root == "/a"
    assert loaded.runroot == "/r"


def test_flags_win_over_files(tmp_path: Path) -> None:
    loaded = load(tmp_path, '[crid]\nroot = "/from-file"\n', root="/from-flag",
                  cni_plugin_dirs=["/x", "/y"])
    assert loaded.root == "/from-flag"
    assert loaded.cni_plugin_dirs == ("/x", "/y")


@pytest.mark.parametrize(("text", "key", "problem"), [
    ("[crid]\nbogus = 1\n", "crid.bogus", "unknown key"),
    ("[crid.api]\nstream_port = 70000\n", "crid.api.stream_port", "out of range"),
    ("[crid.api]\nstream_port = -1\n", "crid.api.stream_port", "out of range"),
    ("[crid.api]\nstream_port = true\n", "crid.api.stream_port", "expected an integer, got bool"),
    ('[crid.api]\nlisten = "crid.sock"\n', "crid.api.listen", "relative path"),
    ('[crid.api]\nlisten_group = "k8s admins"\n', "crid.api.listen_group", "not a group name"),
    ('[crid.api]\nlisten_group = "-x"\n', "crid.api.listen_group", "not a group name"),
    ('[crid.api]\nlisten_group = "4294967295"\n', "crid.api.listen_group", "out of range"),
    ("[crid.api]\nlisten_group = 0\n", "crid.api.listen_group", "expected a string"),
    ('[crid.network]\ncni_plugin_dirs = "/opt"\n', "crid.network.cni_plugin_dirs",
     "expected a list of strings"),
    ('[crid.network]\ncni_plugin_dirs = ["/opt", "bin"]\n', "crid.network.cni_plugin_dirs",
     "relative path"),
    ('[crid.metrics]\naddress = "127.0.0.1:99999"\n', "crid.metrics.address", "out of range"),
    ('[crid.runtime.handlers.kata]\nroot = "/run/kata"\n', "crid.runtime.handlers.kata.path",
     "needs the path"),
    ('[crid.runtime.handlers.kata]\npath = "kata-runtime"\n', "crid.runtime.handlers.kata.path",
     "relative path"),
    ('[crid.runtime.handlers.kata]\npath = "/k"\nflavour = "x"\n',
     "crid.runtime.handlers.kata.flavour", "unknown key"),
    ('[crid.runtime]\ndefault_handler = "nope"\n', "crid.runtime.default_handler",
     "not a configured runtime handler"),
    ("[crid.streaming]\nstream_idle_timeout = 0\n", "crid.streaming.stream_idle_timeout",
     "at least 1"),
    ("[crid.streaming]\nhandshake_timeout = 1.5\n", "crid.streaming.handshake_timeout",
     "expected an integer"),
    ("[crid.streaming]\nmax_streams_per_connection = 4\n",
     "crid.streaming.max_streams_per_connection", "at least 5"),
    ("[crid.streaming]\nwebsocket_max_message = 1024\n",
     "crid.streaming.websocket_max_message", "at least 65536"),
    ("[crid.streaming]\nmax_port_forwards_per_pod = -1\n",
     "crid.streaming.max_port_forwards_per_pod", "at least 1"),
])
def test_mistakes_name_the_key_and_the_problem(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, text)
    assert raised.value.key == key
    assert problem in raised.value.problem


def test_mistakes_name_the_file_they_are_in(tmp_path: Path) -> None:
    bad = write(tmp_path / "crid.d" / "30-net.toml", "[crid.api]\nstream_port = 65536\n")
    with pytest.raises(ConfigError) as raised:
        load(tmp_path)
    assert raised.value.source == str(bad)
    assert str(raised.value).startswith(f"{bad}: crid.api.stream_port: ")


def test_a_bad_flag_is_named_as_a_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, stream_port=123456)
    assert raised.value.source == "flag --stream-port"


def test_missing_default_files_are_fine_but_explicit_ones_are_not(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(tmp_path / "missing.toml", None)
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(None, tmp_path / "missing.d")


def test_configured_handlers_join_the_built_in_ones(tmp_path: Path) -> None:
    loaded = load(tmp_path, '[crid.runtime.handlers.kata]\npath = "/usr/bin/kata"\n'
                            '[crid.runtime]\ndefault_handler = "kata"\n')
    kata = loaded.handler("")
    assert kata is not None and kata.path == "/usr/bin/kata"
    assert loaded.handler("crid") is not None
    assert loaded.handler("missing") is None


@pytest.mark.parametrize("group", ["", "crid", "kube_admins", "_crid", "build$", "0", "64999"])
def test_a_listen_group_is_a_name_or_a_gid(tmp_path: Path, group: str) -> None:
    assert load(tmp_path, f'[crid.api]\nlisten_group = "{group}"\n').listen_group == group


def test_to_toml_round_trips(tmp_path: Path) -> None:
    loaded = load(tmp_path, '[crid.runtime.handlers.kata]\npath = "/usr/bin/kata"\n',
                  stream_port=7000)
    text = loaded.to_toml()
    assert tomllib.loads(text)["crid"]["api"]["stream_port"] == 7000
    again = config.load(write(tmp_path / "again.toml", text), None)
    assert again == loaded


def test_the_documented_config_file_is_valid_and_says_the_defaults() -> None:
    documented = Path(__file__).resolve().parents[2] / "manifests" / "crid.toml"
    assert config.load(documented, None) == config.Config(handlers=config.load(None, None).handlers)
