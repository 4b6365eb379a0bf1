"""Image references: parsing and docker-style normalisation.

``busybox`` becomes ``docker.io/library/busybox:latest``; a reference names a
registry (``domain``, with an optional port), a repository ``path``, and a
``tag`` and/or a ``digest``. The grammar is the distribution project's
(``reference/regexp.go``); anything outside it is an ``InvalidArgument``
that says which part is wrong.
"""

from __future__ import annotations

import dataclasses
import re

from crid.errors import InvalidArgument

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAINS = ("index.docker.io", "registry-1.docker.io")
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
MAX_NAME_LENGTH = 255

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
_DOMAIN = re.compile(
    r"(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
    r"(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*"
    r"|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
)
_HEX_ID = re.compile(r"(?:sha256:)?([a-f0-9]{64})")


@dataclasses.dataclass(frozen=True)
class Reference:
    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None
    #: False when the text named no registry (``busybox``), so registries.conf
    #: ``unqualified-search-registries`` may choose one.
    qualified: bool = True

    @property
    def name(self) -> str:
        """``domain/path``, the repository without tag or digest."""
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    @property
    def tagged(self) -> str | None:
        """``name:tag`` (a repo tag), when the reference has a tag."""
        return f"{self.name}:{self.tag}" if self.tag else None

    @property
    def version(self) -> str:
        """What to ask the registry for: the digest when known, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def with_domain(self, domain: str) -> Reference:
        path = self.path
        if domain == DEFAULT_DOMAIN and "/" not in path:
            path = OFFICIAL_PREFIX + path
        if domain != DEFAULT_DOMAIN and self.domain == DEFAULT_DOMAIN and not self.qualified:
            path = path.removeprefix(OFFICIAL_PREFIX)
        return dataclasses.replace(self, domain=domain, path=path, qualified=True)


def parse(text: str) -> Reference:
    """Parse and normalise ``text``; raise InvalidArgument naming the bad part."""
    if not text:
        raise InvalidArgument("image reference is empty")
    if text != text.strip():
        raise InvalidArgument(f"image reference {text!r} has surrounding whitespace")
    remainder, digest = text, None
    if "@" in remainder:
        remainder, digest = remainder.split("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise InvalidArgument(
                f"image reference {text!r}: digest {digest!r} is not sha256:<64 lowercase hex>"
            )
    tag = None
    slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon > slash:
        remainder, tag = remainder[:colon], remainder[colon + 1:]
        if not _TAG.fullmatch(tag):
            raise InvalidArgument(
                f"image reference {text!r}: tag {tag!r} is invalid "
                "(up to 128 of letters, digits, '_', '.', '-'; not starting with '.' or '-')"
            )
    domain, path, qualified = _split_domain(remainder)
    if not domain or not _DOMAIN.fullmatch(domain):
        raise InvalidArgument(f"image reference {text!r}: registry {domain!r} is not a host[:port]")
    if not path:
        raise InvalidArgument(f"image reference {text!r} has no repository name")
    for component in path.split("/"):
        if not _COMPONENT.fullmatch(component):
            raise InvalidArgument(
                f"image reference {text!r}: repository component {component!r} is invalid "
                "(lowercase letters, digits and separators '.', '_', '__', '-')"
            )
    if len(f"{domain}/{path}") > MAX_NAME_LENGTH:
        raise InvalidArgument(f"image reference {text!r}: name longer than {MAX_NAME_LENGTH}")
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest, qualified)


def _split_domain(name: str) -> tuple[str, str, bool]:
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        domain = DEFAULT_DOMAIN if first in LEGACY_DOMAINS else first
        if domain == DEFAULT_DOMAIN and "/" not in rest:
            rest = OFFICIAL_PREFIX + rest
        return domain, rest, True
    if not sep:
        return DEFAULT_DOMAIN, OFFICIAL_PREFIX + name, False
    return DEFAULT_DOMAIN, name, False


def image_id(text: str) -> str | None:
    """``sha256:<hex>`` when ``text`` is an image ID (with or without ``sha256:``)."""
    match = _HEX_ID.fullmatch(text)
    return f"sha256:{match.group(1)}" if match else None


def is_digest(text: str) -> bool:
    return _DIGEST.fullmatch(text) is not None
