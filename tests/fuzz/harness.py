"""What every fuzz target shares: the rule for what counts as a bug, and atheris' entry.

A target module (``fuzz_<name>.py``) defines ``one_input(data: bytes)``,
which feeds ``data`` to one parser and lets through only what that parser
documents: crid's typed errors and the few others the module names in
``ALLOWED``. Any other exception escapes and is a finding, as are a hang
(libFuzzer's ``-timeout``) and memory past ``-rss_limit_mb``.

``python -P -m tests.fuzz.harness NAME [libFuzzer flags] [corpus dirs]``
runs target NAME under atheris: libFuzzer mutates inputs and atheris feeds
Python's coverage back to it. Only what the target imports from crid and
from the libraries that parse for it (``INSTRUMENTED``) is instrumented:
instrumenting everything loaded costs half a minute at every start. atheris
is imported there only, so the replay test (``test_regressions.py``) calls
``one_input`` directly, as plain code, over the corpus and the regressions.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Callable, Iterator

from crid.errors import ConfigError, CridError

OneInput = Callable[[bytes], None]

# What every parser may raise: crid's typed errors, which the interceptor turns
# into gRPC codes (or the daemon into exit 2, for a config).
TYPED: tuple[type[BaseException], ...] = (CridError, ConfigError)


@contextlib.contextmanager
def allowing(*allowed: type[BaseException]) -> Iterator[None]:
    """Swallow ``allowed`` (and crid's typed errors); anything else is a finding."""
    try:
        yield
    except TYPED + allowed:
        pass


# crid, and the pure-Python parsers it hands outside bytes to.
INSTRUMENTED = ["crid", "json", "tomllib", "tarfile", "gzip", "wsproto", "ipaddress",
                "base64", "google.protobuf"]


def main() -> None:
    """Fuzz the target named by ``sys.argv[1]``; the rest are libFuzzer's flags and dirs."""
    import atheris
    from atheris.import_hook import instrument_imports

    name = sys.argv.pop(1)
    with instrument_imports(include=INSTRUMENTED):
        target = importlib.import_module(f"tests.fuzz.fuzz_{name}")
    atheris.Setup(sys.argv, target.one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
