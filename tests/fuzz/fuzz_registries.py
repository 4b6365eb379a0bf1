"""Fuzz target: registries.conf (containers-registries.conf(5) v2), as crid reads it.

The input is the file's bytes: ``registries.load`` reads and validates it,
then the result is used the way a pull uses it, for a short name, a
qualified one and one with a port and digest (``candidates``, ``endpoints``).

Allowed: crid's typed errors (InvalidArgument for a bad file,
FailedPrecondition for a blocked registry). Anything else escaping is a bug:
a node's file, edited by hand or by a tool, would crash every pull with an
INTERNAL error instead of naming the problem.
"""

from __future__ import annotations

from crid.image import registries
from crid.image.reference import parse

from tests.fuzz.harness import allowing
from tests.fuzz.scratch import file_with

REFERENCES = tuple(parse(text) for text in (
    "busybox", "docker.io/library/busybox:1.36", "quay.io/org/app/sub:tag",
    "localhost:5000/team/app@sha256:" + "a" * 64, "registry.test/x",
))


def one_input(data: bytes) -> None:
    with allowing():
        conf = registries.load(file_with("registries.conf", data))
        for ref in REFERENCES:
            for candidate in conf.candidates(ref):
                with allowing():
                    conf.endpoints(candidate)

