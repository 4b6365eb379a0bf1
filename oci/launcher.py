"""crid-runtime's fast entry point, written over pip's console-script wrapper.

pip's wrapper starts the interpreter with ``site``: 2-3 ms per runtime call
(more when setuptools' ``.pth`` hook is in the venv), and conmon and crid call
the runtime at least three times per container. The runtime needs only the
standard library and crid itself, so this launcher runs ``python -IS``: no
``site``, and, as befits a program that runs as root for every container, no
``PYTHON*`` environment and no script dir on the path; only the one path entry
that holds the ``crid`` package. ``make setup`` and the Dockerfile run
``python -m crid.oci.launcher`` after installing; without it the plain wrapper
still works, a little slower.
"""

from __future__ import annotations

import os
import sys

MARK = "# written by crid.oci.launcher"


def script(python: str, path_entry: str) -> str:
    return (f"#!{python} -IS\n"
            f"{MARK}: crid-runtime without site (python -m crid.oci.launcher rewrites it)\n"
            "import sys\n"
            f"sys.path.append({path_entry!r})\n"
            "from crid.oci.cli import main\n"
            "main()\n")


def install(target: str, python: str = sys.executable) -> None:
    import crid

    entry = os.path.dirname(os.path.dirname(os.path.abspath(crid.__file__)))
    tmp = f"{target}.tmp"
    with open(tmp, "w") as f:
        f.write(script(python, entry))
    os.chmod(tmp, 0o755)
    os.rename(tmp, target)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    target = args[0] if args else os.path.join(os.path.dirname(sys.executable), "crid-runtime")
    install(target)
    print(f"crid-runtime launcher written to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
