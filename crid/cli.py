"""The ``crid`` command: ``serve`` (the default), ``check``, ``config`` and ``version``.

Flags carry cri-o's names so operators' scripts carry over; each one maps to
a config setting and wins over the files. Exit codes: 0 after a clean
shutdown, 2 for a bad configuration or command line (nothing was touched),
1 when the daemon cannot start (socket or root in use). ``check`` exits 0
when the node matches the store, 1 when it found a difference, 2 for a bad
configuration or a ``--repair`` refused because a daemon holds the root.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import crid
from crid import config as config_module
from crid import logs
from crid.errors import ConfigError, CridError

EXIT_START_FAILED = 1
EXIT_BAD_CONFIG = 2

# flag -> Config field; the flag's help is the setting it overrides.
FLAGS: dict[str, str] = {
    "--listen": "listen",
    "--root": "root",
    "--runroot": "runroot",
    "--log-level": "log_level",
    "--metrics-address": "metrics_address",
    "--stream-address": "stream_address",
    "--stream-port": "stream_port",
    "--cni-config-dir": "cni_config_dir",
    "--cni-plugin-dir": "cni_plugin_dirs",
    "--registries-conf": "registries_conf",
    "--global-auth-file": "auth_file",
    "--pinned-images": "pinned_images",
    "--max-parallel-downloads": "max_parallel_downloads",
    "--pull-progress-timeout": "pull_progress_timeout",
    "--cgroup-parent": "cgroup_parent",
    "--default-runtime": "default_handler",
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = getattr(args, "command", None) or "serve"
    # `crid --version` as with crio, runc and crid-runtime; it and `crid version`
    # answer before the config is read: what is installed does not depend on it.
    if args.version or command == "version":
        print(_version_text())
        return 0
    try:
        config = config_module.load(
            Path(args.config) if "config" in args else config_module.DEFAULT_CONFIG_FILE,
            Path(args.config_dir) if "config_dir" in args else config_module.DEFAULT_CONFIG_DIR,
            _overrides(args),
        )
    except ConfigError as exc:
        print(f"crid: invalid configuration: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG

    if command == "config":
        sys.stdout.write(config.to_toml())
        return 0
    if command == "check":
        # The daemon's code the repairs run logs as it would in the daemon: on stderr.
        logs.configure(config.log_level)
        # The checker, and the network settings exactly as the daemon derives them.
        from crid.check import run as check
        from crid.wiring import network_settings

        return check.main(config, network_settings(config), repair=args.repair,
                          as_json=args.json)

    logs.configure(config.log_level)
    # Read by gRPC when it loads, just below. Its fork handlers exist for a
    # child that goes on using gRPC; crid's children exec at once, and with
    # the handlers on, a child forked for a preexec_fn (exec on a terminal)
    # may print gRPC's epoll errors into the container's terminal, and every
    # fork logs a line here.
    os.environ["GRPC_ENABLE_FORK_SUPPORT"] = "false"
    # The server stack, not needed for `config`/`version`; imported here, not
    # on the loop, where reading its modules would stall the first callback.
    from crid import daemon, loop_debug

    async def serve() -> None:
        if config.slow_callback_ms:
            loop_debug.enable(asyncio.get_running_loop(), config.slow_callback_ms)
        await daemon.serve(config)

    try:
        asyncio.run(serve())
    except CridError as exc:
        logs.get("crid").error("cannot start", error=exc.message)
        print(f"crid: {exc.message}", file=sys.stderr)
        return EXIT_START_FAILED
    return 0


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a flag absent from the command line must not override the files.
    s = argparse.SUPPRESS
    common.add_argument("--config", metavar="FILE", default=s,
                        help=f"main config file (default {config_module.DEFAULT_CONFIG_FILE})")
    common.add_argument("--config-dir", metavar="DIR", default=s,
                        help="drop-in dir, *.toml in order "
                        f"(default {config_module.DEFAULT_CONFIG_DIR})")
    for flag, field in FLAGS.items():
        setting = config_module.SETTING_BY_FIELD[field]
        kind = {"int": int}.get(setting.kind.__name__, str)
        action = "append" if setting.kind is list else "store"
        common.add_argument(flag, dest=field, type=kind, action=action, default=s,
                            help=f"overrides {setting.key}"
                            + (" (repeatable)" if action == "append" else ""))

    parser = argparse.ArgumentParser(
        prog="crid", parents=[common],
        description="crid: a Kubernetes container runtime (CRI) in Python.",
    )
    parser.add_argument("--version", action="store_true",
                        help="print versions and exit (as `crid version`)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("serve", parents=[common], help="serve the CRI on the socket (default)")
    check = sub.add_parser(
        "check", parents=[common],
        help="compare the store with the node; list leaks (exit 1 when any)")
    check.add_argument("--repair", action="store_true",
                       help="fix what is safe to fix (only while no daemon runs on the root)")
    check.add_argument("--json", action="store_true", help="print the findings as JSON")
    sub.add_parser("config", parents=[common], help="print the effective config as TOML")
    sub.add_parser("version", parents=[common], help="print versions")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    given = vars(args)
    return {field: given[field] for field in FLAGS.values() if field in given}


def _version_text() -> str:
    import google.protobuf
    import grpc

    from crid.runtime_info import RUNTIME_API_VERSION

    return "\n".join([
        f"crid version {crid.__version__}",
        f"RuntimeApiVersion: {RUNTIME_API_VERSION}",
        f"Python: {platform.python_version()}",
        f"grpcio: {grpc.__version__}",
        f"protobuf: {google.protobuf.__version__}",
    ])


if __name__ == "__main__":
    sys.exit(main())
