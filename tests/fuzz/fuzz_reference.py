"""Fuzz target: image references (``image.reference.parse``) and image IDs.

Every image name a client sends (PullImage, ImageStatus, CreateContainer's
image, RemoveImage) goes through ``parse``; the input is such a name as
UTF-8 (invalid bytes replaced). A parsed reference must print back to a
string that parses to itself: that is what crid stores and matches names by.

Allowed: InvalidArgument. Anything else escaping is a bug, as is a
reference that does not survive printing and parsing again.
"""

from __future__ import annotations

from crid.image.reference import image_id, is_digest, parse

from tests.fuzz.harness import allowing


def one_input(data: bytes) -> None:
    text = data.decode(errors="replace")
    image_id(text)
    is_digest(text)
    with allowing():
        ref = parse(text)
        again = parse(str(ref))
        if str(again) != str(ref):
            raise AssertionError(f"{text!r} parses to {ref}, which parses to {again}")
        for domain in ("docker.io", "registry.test:5000"):
            moved = ref.with_domain(domain)
            if parse(str(moved)).name != moved.name:
                raise AssertionError(f"{ref} moved to {domain} does not parse back")

