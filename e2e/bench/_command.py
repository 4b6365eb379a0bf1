"""The command line every benchmark module shares: ``python -P -m
e2e.bench.<name>`` described by the first line of its docstring, and its
counts (pods, calls, rounds...) as integer options whose help gives the
default. A module adds what is its own (``--handler``...) to the parser it
gets here; ``main(argv) -> int`` is the module's exit status.
"""

from __future__ import annotations

import argparse


def parser(module: str, doc: str | None, **counts: tuple[int, str]) -> argparse.ArgumentParser:
    """``counts`` maps an option (``per_pod`` is ``--per-pod``) to its default
    and what it counts."""
    found = argparse.ArgumentParser(prog=f"python -P -m {module}",
                                    description=(doc or "").strip().partition("\n")[0])
    for name, (default, what) in counts.items():
        found.add_argument(f"--{name.replace('_', '-')}", type=int, default=default,
                           help=f"{what} (default {default})")
    return found
