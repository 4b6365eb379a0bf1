"""The daemon's configuration: defaults, TOML files, flags, validation.

Precedence, lowest first: the defaults below, ``/etc/crid/crid.toml``, the
drop-ins in ``/etc/crid/crid.d/*.toml`` in lexical order, then command-line
flags. Every setting has one entry in ``SETTINGS`` giving its TOML key, its
type and how it is checked; flags name the same settings (``crid.cli``).

Each file is validated on its own, so an error names the file and the key
(``/etc/crid/crid.d/10-net.toml: crid.api.stream_port: 70000 is out of range
0..65535``). Nothing here touches the filesystem beyond reading the files.

Runtime handlers are the one open-ended table: ``[crid.runtime.handlers.NAME]``
with ``path`` (the OCI runtime binary) and optional ``root`` (its state dir).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import shutil
import sys
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import tomli_w

from crid.errors import ConfigError

DEFAULT_CONFIG_FILE = Path("/etc/crid/crid.toml")
DEFAULT_CONFIG_DIR = Path("/etc/crid/crid.d")
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclasses.dataclass(frozen=True)
class Handler:
    """A runtime handler (RuntimeClass): a name mapped to an OCI runtime."""

    name: str
    path: str
    root: str = ""


@dataclasses.dataclass(frozen=True)
class Config:
    root: str = "/var/lib/crid"
    runroot: str = "/run/crid"
    log_level: str = "info"
    listen: str = "/run/crid/crid.sock"
    listen_group: str = ""  # who may connect besides root: a group name or gid; "" = root's
    stream_address: str = "127.0.0.1"
    stream_port: int = 0
    grpc_fast_path: str = "auto"  # "off": serve on grpc.aio only (crid.grpc_transport)
    metrics_address: str = "127.0.0.1:9090"
    cni_config_dir: str = "/etc/cni/net.d"
    cni_plugin_dirs: tuple[str, ...] = ("/opt/cni/bin", "/usr/lib/cni")
    cni_timeout: int = 60
    cni_default_network: bool = True
    cni_default_name: str = "crid"
    cni_default_bridge: str = "crid0"
    cni_default_subnet: str = "10.88.0.0/16"
    registries_conf: str = "/etc/containers/registries.conf"
    auth_file: str = ""  # a docker config.json; "" = none
    pinned_images: tuple[str, ...] = ()
    max_parallel_downloads: int = 3
    pull_progress_timeout: int = 300  # seconds without a byte before a pull fails
    pull_with_sync_fs: bool = True  # syncfs(2) each unpacked layer before it is committed
    # Bounds on what is read from images (issue 15; SECURITY.md "Limits").
    max_passwd_group_bytes: int = 4 << 20  # each of an image's /etc/passwd and /etc/group
    max_image_bytes: int = 64 << 30  # unpacked file data of one image (sparse: data only)
    cgroup_parent: str = "/crid"
    default_handler: str = "crid"
    # How often the writable layers' disk usage is measured (stats read the cache).
    stats_layer_interval: int = 10
    # CDI spec files: later dirs override earlier ones (crid.cdi.registry).
    cdi_spec_dirs: tuple[str, ...] = ("/etc/cdi", "/var/run/cdi")
    # The streaming server's limits (crid.streaming.limits; SECURITY.md).
    stream_handshake_timeout: int = 30  # seconds from connect to the 101
    stream_max_handshakes: int = 128  # connections not yet past the handshake
    stream_creation_timeout: int = 30  # kubelet's: seconds to open a session's streams
    stream_idle_timeout: int = 4 * 3600  # kubelet's: seconds without a frame either way
    stream_max_streams_per_connection: int = 250
    stream_max_port_forwards_per_pod: int = 128
    stream_websocket_max_message: int = 32 * 1024 * 1024  # kubelet's (x/net/websocket)
    stream_dial_workers: int = 4  # threads that make port-forward sockets in pods
    handlers: tuple[Handler, ...] = ()
    # NRI plugins (crid.nri): on, as in containerd 2.x; with no plugin it costs nothing.
    nri_enable: bool = True
    nri_socket_path: str = "/var/run/nri/nri.sock"
    nri_plugin_path: str = "/opt/nri/plugins"
    nri_plugin_config_path: str = "/etc/nri/conf.d"
    nri_registration_timeout_ms: int = 5000
    nri_request_timeout_ms: int = 2000
    # > 0: the event loop runs in debug mode and logs every callback that holds it
    # longer than this (crid.loop_debug); for tests and stall hunting, it costs speed.
    slow_callback_ms: int = 0

    def handler(self, name: str) -> Handler | None:
        """The handler called ``name`` ('' means the default one)."""
        wanted = name or self.default_handler
        return next((h for h in self.handlers if h.name == wanted), None)

    def to_toml(self) -> str:
        """The effective configuration, in the same shape as the files."""
        tree: dict[str, Any] = {}
        for setting in SETTINGS:
            value = getattr(self, setting.field)
            _put(tree, setting.key, list(value) if isinstance(value, tuple) else value)
        handlers = {h.name: {"path": h.path, **({"root": h.root} if h.root else {})}
                    for h in self.handlers}
        _put(tree, "crid.runtime.handlers", handlers)
        return tomli_w.dumps(tree)


# --- checks ----------------------------------------------------------------

Check = Callable[[Any], str | None]  # returns a problem, or None when fine


def _absolute(value: Any) -> str | None:
    if not str(value).startswith("/"):
        return f"{value!r} is a relative path; an absolute path is required"
    return None


def _absolute_or_empty(value: Any) -> str | None:
    return _absolute(value) if value else None


def _each_absolute(value: Any) -> str | None:
    return next((p for p in map(_absolute, value) if p), None)


def _port(value: Any) -> str | None:
    if not 0 <= value <= 65535:
        return f"{value} is out of range 0..65535"
    return None


def _host_port_or_empty(value: Any) -> str | None:
    if value == "":
        return None
    host, sep, port = str(value).rpartition(":")
    if not sep or not host or not port.isdigit():
        return f"{value!r} is not HOST:PORT (use \"\" to turn it off)"
    return _port(int(port))


def _positive(value: Any) -> str | None:
    return None if value > 0 else f"{value} must be at least 1"


def _at_least(least: int) -> Check:
    def check(value: Any) -> str | None:
        return None if value >= least else f"{value} must be at least {least}"

    return check


def _one_of(choices: Iterable[str]) -> Check:
    options = tuple(choices)

    def check(value: Any) -> str | None:
        if value not in options:
            return f"{value!r} is not one of {', '.join(options)}"
        return None

    return check


def _not_empty(value: Any) -> str | None:
    return None if value else "must not be empty"


def _interface_name(value: Any) -> str | None:
    if not value or len(value) > 15 or "/" in value or any(c.isspace() for c in value):
        return f"{value!r} is not a network interface name (1-15 characters, no '/' or spaces)"
    return None


def _subnet(value: Any) -> str | None:
    try:
        ipaddress.ip_network(value)
    except ValueError as exc:
        return f"{value!r} is not a subnet: {exc}"
    return None


# A group as /etc/group names it (shadow-utils' rule, as groupadd checks it),
# or a gid; where it exists on the node is asked when the daemon starts.
_GROUP_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,30}\$?", re.IGNORECASE)
_MAX_GID = 2**32 - 2  # (gid_t)-1 means "unchanged" to chown


def _group_or_empty(value: Any) -> str | None:
    if value == "" or _GROUP_NAME.fullmatch(value):
        return None
    if value.isdigit() and value.isascii():
        return None if int(value) <= _MAX_GID else f"{value} is out of range 0..{_MAX_GID}"
    return f"{value!r} is not a group name or gid (\"\" = root's group)"


@dataclasses.dataclass(frozen=True)
class Setting:
    key: str  # dotted TOML key
    field: str  # attribute of Config
    kind: type  # str, int, bool or list (of str)
    check: Check | None = None


SETTINGS: tuple[Setting, ...] = (
    Setting("crid.root", "root", str, _absolute),
    Setting("crid.runroot", "runroot", str, _absolute),
    Setting("crid.log_level", "log_level", str, _one_of(LOG_LEVELS)),
    Setting("crid.api.listen", "listen", str, _absolute),
    Setting("crid.api.listen_group", "listen_group", str, _group_or_empty),
    Setting("crid.api.stream_address", "stream_address", str, _not_empty),
    Setting("crid.api.stream_port", "stream_port", int, _port),
    Setting("crid.api.grpc_fast_path", "grpc_fast_path", str, _one_of(("auto", "off"))),
    Setting("crid.metrics.address", "metrics_address", str, _host_port_or_empty),
    Setting("crid.network.cni_config_dir", "cni_config_dir", str, _absolute),
    Setting("crid.network.cni_plugin_dirs", "cni_plugin_dirs", list, _each_absolute),
    Setting("crid.network.cni_timeout", "cni_timeout", int, _positive),
    Setting("crid.network.default_network", "cni_default_network", bool),
    Setting("crid.network.default_network_name", "cni_default_name", str, _not_empty),
    Setting("crid.network.default_bridge", "cni_default_bridge", str, _interface_name),
    Setting("crid.network.default_subnet", "cni_default_subnet", str, _subnet),
    Setting("crid.image.registries_conf", "registries_conf", str, _absolute),
    Setting("crid.image.auth_file", "auth_file", str, _absolute_or_empty),
    Setting("crid.image.pinned_images", "pinned_images", list),
    Setting("crid.image.max_parallel_downloads", "max_parallel_downloads", int, _positive),
    Setting("crid.image.pull_progress_timeout", "pull_progress_timeout", int, _positive),
    Setting("crid.image.pull_with_sync_fs", "pull_with_sync_fs", bool),
    Setting("crid.image.max_passwd_group_bytes", "max_passwd_group_bytes", int, _positive),
    Setting("crid.image.max_image_bytes", "max_image_bytes", int, _positive),
    Setting("crid.runtime.cgroup_parent", "cgroup_parent", str, _absolute),
    Setting("crid.runtime.default_handler", "default_handler", str, _not_empty),
    Setting("crid.stats.layer_refresh_seconds", "stats_layer_interval", int, _positive),
    Setting("crid.cdi.spec_dirs", "cdi_spec_dirs", list, _each_absolute),
    Setting("crid.streaming.handshake_timeout", "stream_handshake_timeout", int, _positive),
    Setting("crid.streaming.max_handshakes", "stream_max_handshakes", int, _positive),
    Setting("crid.streaming.stream_creation_timeout", "stream_creation_timeout", int,
            _positive),
    Setting("crid.streaming.stream_idle_timeout", "stream_idle_timeout", int, _positive),
    Setting("crid.streaming.max_streams_per_connection", "stream_max_streams_per_connection",
            int, _at_least(5)),
    Setting("crid.streaming.max_port_forwards_per_pod", "stream_max_port_forwards_per_pod",
            int, _positive),
    Setting("crid.streaming.websocket_max_message", "stream_websocket_max_message", int,
            _at_least(64 * 1024)),
    Setting("crid.streaming.dial_workers", "stream_dial_workers", int, _positive),
    Setting("crid.nri.enable", "nri_enable", bool),
    Setting("crid.nri.socket_path", "nri_socket_path", str, _absolute),
    Setting("crid.nri.plugin_path", "nri_plugin_path", str, _absolute_or_empty),
    Setting("crid.nri.plugin_config_path", "nri_plugin_config_path", str, _absolute_or_empty),
    Setting("crid.nri.registration_timeout_ms", "nri_registration_timeout_ms", int, _positive),
    Setting("crid.nri.request_timeout_ms", "nri_request_timeout_ms", int, _positive),
    Setting("crid.debug.slow_callback_ms", "slow_callback_ms", int, _at_least(0)),
)
SETTING_BY_FIELD = {s.field: s for s in SETTINGS}
HANDLER_KEYS: Mapping[str, Check] = {"path": _absolute, "root": _absolute_or_empty}


# --- loading -----------------------------------------------------------------


def load(
    config_file: Path | None = DEFAULT_CONFIG_FILE,
    config_dir: Path | None = DEFAULT_CONFIG_DIR,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Defaults, then the file, then drop-ins, then ``overrides`` (flags).

    A missing default file or dir is fine (a fresh node has none); an explicit
    one that is missing is an error. ``overrides`` maps Config fields to
    values and is checked like a file whose source is ``flag``.
    """
    values: dict[str, Any] = {}
    handlers: dict[str, dict[str, str]] = {}
    for path in _config_files(config_file, config_dir):
        file_values, file_handlers = _read_file(path)
        values.update(file_values)
        for name, handler_fields in file_handlers.items():
            handlers.setdefault(name, {}).update(handler_fields)
    for field, value in (overrides or {}).items():
        setting = SETTING_BY_FIELD[field]
        flag = "--" + field.replace("_", "-")
        values[field] = _checked(f"flag {flag}", setting, value)

    settings: dict[str, Any] = {
        f: tuple(v) if isinstance(v, list) else v for f, v in values.items()
    }
    merged = dataclasses.replace(Config(), **settings)
    return dataclasses.replace(merged, handlers=_resolve_handlers(merged, handlers))


def _config_files(config_file: Path | None, config_dir: Path | None) -> list[Path]:
    files: list[Path] = []
    if config_file is not None:
        if config_file.exists():
            files.append(config_file)
        elif config_file != DEFAULT_CONFIG_FILE:
            raise ConfigError(str(config_file), "-", "config file does not exist")
    if config_dir is not None:
        if config_dir.is_dir():
            files.extend(sorted(config_dir.glob("*.toml")))
        elif config_dir != DEFAULT_CONFIG_DIR:
            raise ConfigError(str(config_dir), "-", "config directory does not exist")
    return files


def _read_file(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    source = str(path)
    try:
        tree = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, "-", f"cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "-", f"not valid TOML: {exc}") from exc
    except RecursionError:
        raise ConfigError(source, "-", "not valid TOML: nested too deeply") from None

    values: dict[str, Any] = {}
    handlers: dict[str, dict[str, str]] = {}
    known = {s.key: s for s in SETTINGS}
    for key, value in _flatten(tree):
        if key.startswith("crid.runtime.handlers."):
            name, _, field = key.removeprefix("crid.runtime.handlers.").rpartition(".")
            handlers.setdefault(name, {})[field] = _checked_handler(source, key, field, value)
        elif key in known:
            values[known[key].field] = _checked(source, known[key], value)
        else:
            raise ConfigError(source, key, "unknown key")
    return values, handlers


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for name, value in tree.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{name}.")
        else:
            yield prefix + name, value


def _checked(source: str, setting: Setting, value: Any) -> Any:
    if setting.kind is list:
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        expected = "a list of strings"
    elif setting.kind is bool:
        ok, expected = isinstance(value, bool), "true or false"
    else:
        # bool is an int in Python; a port of `true` is still a wrong type.
        ok = isinstance(value, setting.kind) and not isinstance(value, bool)
        expected = "an integer" if setting.kind is int else "a string"
    if not ok:
        raise ConfigError(source, setting.key,
                          f"wrong type: expected {expected}, got {type(value).__name__}")
    problem = setting.check(value) if setting.check else None
    if problem:
        raise ConfigError(source, setting.key, problem)
    return value


def _checked_handler(source: str, key: str, field: str, value: Any) -> str:
    if field not in HANDLER_KEYS:
        raise ConfigError(source, key, f"unknown key (a handler has {', '.join(HANDLER_KEYS)})")
    if not isinstance(value, str):
        raise ConfigError(source, key, f"wrong type: expected a string, got {type(value).__name__}")
    problem = HANDLER_KEYS[field](value)
    if problem:
        raise ConfigError(source, key, problem)
    return value


def _resolve_handlers(
    config: Config, configured: Mapping[str, Mapping[str, str]]
) -> tuple[Handler, ...]:
    """The configured handlers plus the built-in ones (crid always, runc when installed)."""
    found: dict[str, Handler] = {}
    builtin = {"crid": _crid_runtime_path(), "runc": shutil.which("runc") or ""}
    for name, path in builtin.items():
        if path:
            found[name] = Handler(name, path)
    for name, fields in configured.items():
        base = found.get(name, Handler(name, ""))
        found[name] = Handler(name, fields.get("path", base.path), fields.get("root", base.root))
        if not found[name].path:
            raise ConfigError("config", f"crid.runtime.handlers.{name}.path",
                              "a runtime handler needs the path of its OCI runtime")
    if config.default_handler not in found:
        raise ConfigError("config", "crid.runtime.default_handler",
                          f"{config.default_handler!r} is not a configured runtime handler "
                          f"(have: {', '.join(sorted(found)) or 'none'})")
    return tuple(found[name] for name in sorted(found))


def own_runtime_path() -> Path:
    """crid-runtime of the daemon's own install: beside its interpreter. It runs
    the daemon's own code (``crid.containers.runtime_in_process.runs_own_code``)."""
    return Path(sys.executable).parent / "crid-runtime"


def _crid_runtime_path() -> str:
    """crid-runtime from the same install as the daemon, else from PATH."""
    beside = own_runtime_path()
    if beside.exists():
        return str(beside)
    return shutil.which("crid-runtime") or str(beside)


def _put(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for name in parents:
        tree = tree.setdefault(name, {})
    tree[leaf] = value
