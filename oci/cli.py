"""crid-runtime's entry point: global flags, then one verb module (imported lazily).

Start-up time is part of every container start, so this file imports nothing
beyond ``os``/``sys`` until it knows the verb.
"""

from __future__ import annotations

import os
import sys

VERBS = ("create", "start", "run", "state", "kill", "delete", "exec", "ps", "pause",
         "resume", "update", "list", "features", "spec")
_GLOBAL = {
    "--root": "root:str", "--log": "log:str", "--log-format": "log_format:str",
    "--debug": "debug:bool", "--systemd-cgroup": "systemd_cgroup:bool",
    "--criu": "criu:str", "--rootless": "rootless:str",
}
USAGE = f"usage: crid-runtime [--root DIR] [--log FILE] [--log-format text|json] COMMAND ...\n" \
        f"commands: {', '.join(VERBS)}\n"


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        # Called as the program: skip the interpreter's teardown (module GC,
        # atexit), a few milliseconds on every container start.
        code = run(sys.argv[1:])
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return run(argv)


def run(argv: list[str]) -> int:
    if {"create", "run", "exec"} & set(argv):  # the verb, or an id or path: no harm
        from crid.oci import attach_prime

        attach_prime.start()
    from crid.oci.context import Context, parse

    ctx = Context()
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        if argv[i] in ("--version", "-v"):
            from crid import __version__

            sys.stdout.write(f"crid-runtime version {__version__}\nspec: 1.0.2\n")
            return 0
        if argv[i] in ("--help", "-h"):
            sys.stdout.write(USAGE)
            return 0
        i += 1
        key = argv[i - 1].partition("=")[0]
        if key in _GLOBAL and not _GLOBAL[key].endswith("bool") and "=" not in argv[i - 1]:
            i += 1
    try:
        g = parse(argv[:i], _GLOBAL)
        if g.flags.get("systemd_cgroup"):
            raise _invalid("--systemd-cgroup is not supported: crid-runtime drives cgroupfs only")
        ctx.root = os.path.abspath(g.flags.get("root") or ctx.root)
        ctx.log = g.flags.get("log")
        ctx.log_format = g.flags.get("log_format") or "text"
        ctx.debug = bool(g.flags.get("debug"))
        if i >= len(argv):
            sys.stderr.write(USAGE)
            return 1
        verb = argv[i]
        if verb not in VERBS:
            raise _invalid(f"no such command: {verb}")
        name = "list_" if verb == "list" else verb
        mod = getattr(__import__(f"crid.oci.verbs.{name}").oci.verbs, name)
        code: int = mod.main(ctx, argv[i + 1 :])
        return code
    except Exception as e:
        from crid.oci.errors import describe

        msg = describe(e)
        sys.stderr.write(f"crid-runtime: {msg}\n")
        ctx.log_line("error", msg)
        return 1


def _invalid(msg: str) -> Exception:
    from crid.oci.errors import InvalidArgument

    return InvalidArgument(msg)


if __name__ == "__main__":
    sys.exit(main())
