"""``python -m e2e.bench``: run every benchmark module in this package.

A benchmark module has a ``main()``; helpers they share start with ``_``.
"""

from __future__ import annotations

import importlib
import pkgutil

import e2e.bench


def main() -> None:
    for module in sorted(m.name for m in pkgutil.iter_modules(e2e.bench.__path__)):
        if not module.startswith("_"):
            importlib.import_module(f"e2e.bench.{module}").main()


if __name__ == "__main__":
    main()
