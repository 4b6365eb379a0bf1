"""Run every benchmark module in this package (``e2e/bench/<name>.py`` with a
``main() -> int``), the runtime benchmark first."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

FIRST = ["runtime"]


def main() -> int:
    here = Path(__file__).parent
    names = [m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_")]
    rc = 0
    for name in sorted(names, key=lambda n: (n not in FIRST, n)):
        print(f"== bench: {name}", flush=True)
        mod = importlib.import_module(f"e2e.bench.{name}")
        rc |= int(mod.main())
    return rc


if __name__ == "__main__":
    sys.exit(main())
