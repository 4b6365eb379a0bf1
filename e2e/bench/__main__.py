"""``python -P -m e2e.bench``: run benchmark modules of this package.

- no argument (``make bench``): the node suite of issue 19, ``SUITE``, in
  that order, each with its defaults; a module of it not written yet is
  named and skipped;
- ``--all`` (``make bench-all``): every module, the runtime's first (the
  cheapest, and the one every other figure rests on), then in name order,
  the ``*_vs_rev`` comparisons against older revisions among them;
- ``NAME [OPTIONS...]``: the module ``e2e.bench.NAME`` alone, given OPTIONS
  (``python -P -m e2e.bench node_scale --pods 10``).

A benchmark module has ``main(argv) -> int`` (0 when it ran); helpers they
share start with ``_``.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import e2e.bench

# What issue 19 asks `make bench` to run in under 15 minutes on 2 cores, and
# the options each runs with: pods one at a time on crid's own handler (its
# memory figure is node_scale's, at 110 pods).
SUITE: tuple[tuple[str, list[str]], ...] = (
    ("runtime", []),
    ("pods", ["--handler", "crid", "--memory-pods", "10"]),
    ("node_scale", []),
    ("pull_many", []),
    ("critest_bench", []),
)


def modules() -> list[str]:
    """Every benchmark module here, the runtime's first, then by name."""
    names = [m.name for m in pkgutil.iter_modules(e2e.bench.__path__)
             if not m.name.startswith("_")]
    return sorted(names, key=lambda n: (n != "runtime", n))


def run(suite: list[tuple[str, list[str]]]) -> int:
    failed = 0
    present = set(modules())
    for module, options in suite:
        if module not in present:
            print(f"== e2e.bench.{module}: not there, skipped", flush=True)
            continue
        print(f"== e2e.bench.{module} {' '.join(options)}".rstrip(), flush=True)
        failed |= importlib.import_module(f"e2e.bench.{module}").main(options)
    return failed


def main(argv: list[str]) -> int:
    if not argv:
        return run(list(SUITE))
    if argv == ["--all"]:
        return run([(name, []) for name in modules()])
    name, *options = argv
    if name.startswith("-") or name not in modules():
        print(f"usage: python -P -m e2e.bench [--all | NAME [OPTIONS...]]; "
              f"NAME one of: {', '.join(modules())}", file=sys.stderr)
        return 2
    result: int = importlib.import_module(f"e2e.bench.{name}").main(options)
    return result


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
