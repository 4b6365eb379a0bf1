"""What every verb gets: the global options and a tiny runc-style flag parser.

argparse (and dataclasses) cost milliseconds to import, paid on every container
start; runc's flags are simple enough for a table-driven parser.
"""

from __future__ import annotations

import os
import sys
import time

from crid.oci.errors import InvalidArgument

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from typing import Any


class Context:
    """One verb's options. The CLI makes one per process; the daemon, which runs
    some verbs in-process (``crid.containers.runtime_in_process``), one per
    call, with a ``deadline`` (``time.monotonic``) for what may wait and
    ``warn`` going to its log."""

    def __init__(self) -> None:
        self.root = "/run/crid-runtime"
        self.log: str | None = None
        self.log_format = "text"
        self.debug = False
        self.deadline: float | None = None  # None: the CLI waits as long as it must
        self.t0 = time.perf_counter()

    def log_line(self, level: str, msg: str) -> None:
        if not self.log:
            return
        try:
            with open(self.log, "a") as f:
                stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                if self.log_format == "json":
                    from crid.oci import jsonc

                    f.write(jsonc.dumps({"level": level, "msg": msg, "time": stamp}) + "\n")
                else:
                    f.write(f'time="{stamp}" level={level} msg="{msg}"\n')
        except OSError:
            pass

    def step(self, what: str) -> None:
        """With --debug, log how long since start-up each step took (to --log)."""
        if self.debug:
            ms = (time.perf_counter() - self.t0) * 1000
            self.log_line("debug", f"{what} at {ms:.1f} ms")

    def warn(self, msg: str) -> None:
        sys.stderr.write(f"crid-runtime: warning: {msg}\n")
        self.log_line("warning", msg)


class Args:
    def __init__(self) -> None:
        self.flags: dict[str, Any] = {}
        self.pos: list[str] = []

    def one_id(self, verb: str) -> str:
        if not self.pos:
            raise InvalidArgument(f'"{verb}" requires a container id')
        return self.pos[0]


def parse(argv: list[str], spec: dict[str, str], stop_after: int | None = None) -> Args:
    """``spec`` maps every spelling (``--bundle``, ``-b``) to ``name:kind`` where kind
    is ``bool``, ``str``, ``int`` or ``list`` (repeatable). Parsing stops at ``--``
    or once ``stop_after`` positionals were seen (exec's command)."""
    out = Args()
    i = 0
    while i < len(argv):
        a = argv[i]
        if stop_after is not None and len(out.pos) >= stop_after:
            out.pos.extend(argv[i:])
            break
        if a == "--":
            out.pos.extend(argv[i + 1 :])
            break
        if a.startswith("-") and len(a) > 1:
            key, eq, val = a.partition("=")
            if key not in spec and key.startswith("-") and not key.startswith("--"):
                key = "-" + key  # urfave/cli accepts -bundle for --bundle
            if key not in spec:
                raise InvalidArgument(f"flag provided but not defined: {a.split('=')[0]}")
            name, kind = spec[key].split(":")
            if kind == "bool":
                out.flags[name] = val.lower() not in ("false", "0") if eq else True
            else:
                if not eq:
                    i += 1
                    if i >= len(argv):
                        raise InvalidArgument(f"flag needs an argument: {key}")
                    val = argv[i]
                if kind == "int":
                    try:
                        out.flags[name] = int(val)
                    except ValueError:
                        raise InvalidArgument(f"invalid value {val!r} for flag {key}") from None
                elif kind == "list":
                    out.flags.setdefault(name, []).append(val)
                else:
                    out.flags[name] = val
        else:
            out.pos.append(a)
        i += 1
    return out


def abspath(p: str | None) -> str | None:
    return None if p is None else os.path.abspath(p)
