"""Fuzz target: crid.toml, the daemon's config file (and its drop-ins).

The input is one file's bytes, loaded by ``crid.config.load`` as
``/etc/crid/crid.toml`` would be (no drop-in dir), then rendered back
(``Config.to_toml``, what ``crid config`` prints).

Allowed: ``ConfigError`` (the daemon prints it and exits 2). Anything else
escaping is a bug: a typo in a node's config would end in a traceback
instead of a message naming the file and the key.
"""

from __future__ import annotations

from crid import config
from tests.fuzz.harness import allowing
from tests.fuzz.scratch import file_with


def one_input(data: bytes) -> None:
    with allowing():
        loaded = config.load(file_with("crid.toml", data), None)
        loaded.to_toml()

