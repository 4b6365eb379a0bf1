"""crid-runtime: placeholder entry point until the runtime lands."""

import sys


def main() -> int:
    sys.stderr.write("crid-runtime: not implemented yet\n")
    return 1
