"""``python -m e2e.bench``: run every benchmark module in this package, the
runtime's first (the cheapest, and the one every other figure rests on), then
in name order.

A benchmark module has ``main(argv) -> int`` (0 when it ran); helpers they
share start with ``_``.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import e2e.bench


def main() -> int:
    failed = 0
    names = [m.name for m in pkgutil.iter_modules(e2e.bench.__path__)]
    for module in sorted(names, key=lambda n: (n != "runtime", n)):
        if module.startswith("_"):
            continue
        print(f"== e2e.bench.{module}", flush=True)
        failed |= importlib.import_module(f"e2e.bench.{module}").main([])
    return failed


if __name__ == "__main__":
    sys.exit(main())
