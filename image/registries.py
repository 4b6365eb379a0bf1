"""Registry configuration: containers-registries.conf(5), version 2 (TOML).

Owns which endpoints a pull of a reference tries, in order: the mirrors of
the longest matching ``[[registry]]`` prefix, then the registry's
``location`` (or the reference's own host). Each endpoint says whether it
may be reached insecurely (plain HTTP or unverified TLS): only when
``insecure = true`` is set for it, or when the reference itself names a
loopback host (``localhost:5000/app``, ``127.0.0.1:5000/app``), as docker
does. A location or mirror configured on loopback follows its ``insecure``
setting like any other. ``blocked = true`` refuses pulls of that prefix.

Short names (``busybox``) are tried against ``unqualified-search-registries``
in order; with none configured they mean ``docker.io``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import time
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from crid.image.reference import DEFAULT_DOMAIN, Reference

from crid.errors import FailedPrecondition, InvalidArgument


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """Where to fetch a repository from: a host and the repository path there."""

    host: str  # host[:port]
    repository: str
    insecure: bool
    mirror: bool = False

    def __str__(self) -> str:
        return f"{self.host}/{self.repository}"


@dataclasses.dataclass(frozen=True)
class Mirror:
    location: str
    insecure: bool = False


@dataclasses.dataclass(frozen=True)
class Registry:
    prefix: str
    location: str
    insecure: bool = False
    blocked: bool = False
    mirrors: tuple[Mirror, ...] = ()

    def matches(self, name: str) -> bool:
        if self.prefix.startswith("*."):
            domain = name.split("/", 1)[0]
            return domain.endswith(self.prefix[1:])
        return name == self.prefix or name.startswith(self.prefix + "/")


@dataclasses.dataclass(frozen=True)
class RegistriesConfig:
    search: tuple[str, ...] = ()
    registries: tuple[Registry, ...] = ()

    def candidates(self, ref: Reference) -> list[Reference]:
        """The fully qualified references a (possibly short) reference may mean."""
        if ref.qualified or not self.search:
            return [ref]
        return [ref.with_domain(domain) for domain in self.search]

    def find(self, name: str) -> Registry | None:
        """The ``[[registry]]`` whose prefix matches ``name`` most specifically."""
        found = [r for r in self.registries if r.matches(name)]
        return max(found, key=lambda r: len(r.prefix), default=None)

    def endpoints(self, ref: Reference) -> list[Endpoint]:
        """Mirrors first, in file order, then the registry itself."""
        name = ref.name
        registry = self.find(name)
        own_insecure = is_loopback(ref.domain)
        if registry is None:
            return [Endpoint(ref.domain, ref.path, own_insecure)]
        if registry.blocked:
            raise FailedPrecondition(
                f"pulling {ref} is refused: registry {registry.prefix!r} is blocked "
                "in registries.conf"
            )
        out = []
        for mirror in registry.mirrors:
            out.append(_rewrite(registry, mirror.location, name, mirror.insecure, mirror=True))
        if registry.location and registry.location != registry.prefix:
            out.append(_rewrite(registry, registry.location, name, registry.insecure))
        else:
            out.append(Endpoint(ref.domain, ref.path, registry.insecure or own_insecure))
        return out


def _rewrite(
    registry: Registry, location: str, name: str, insecure: bool, *, mirror: bool = False
) -> Endpoint:
    # A wildcard prefix has no location to replace: its mirrors get the full name.
    wildcard = registry.prefix.startswith("*.")
    rest = name if wildcard else name[len(registry.prefix):].lstrip("/")
    full = f"{location.rstrip('/')}/{rest}" if rest else location.rstrip("/")
    host, _, repository = full.partition("/")
    if not repository:
        raise InvalidArgument(f"registries.conf: {location!r} leaves no repository for {name}")
    if host == DEFAULT_DOMAIN and "/" not in repository:
        repository = "library/" + repository
    return Endpoint(host, repository, insecure, mirror)


def is_loopback(host: str) -> bool:
    hostname = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1:].split("]")[0]
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def load(path: Path) -> RegistriesConfig:
    """Read ``path``; a missing file means no configuration (docker.io only)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return RegistriesConfig()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"{path}: cannot read: {exc}") from exc
    try:
        tree = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidArgument(f"{path}: not valid TOML: {exc}") from exc
    except RecursionError:
        raise InvalidArgument(f"{path}: not valid TOML: nested too deeply") from None
    return parse(tree, str(path))


# A file changed this recently may change again within the same mtime tick
# (the "racy git" problem): such a file is read again on the next call.
RACY_SECONDS = 2.0


class Loaded:
    """``load(path)`` again only when the file changed (its inode, size, mtime or
    ctime), so edits still apply to the next call: ImageStatus, RemoveImage and
    a filtered ListImages resolve names through it on every call, and reading
    and parsing the TOML each time cost more than the rest of such a call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[tuple[int, ...] | None, RegistriesConfig] | None = None

    def get(self) -> RegistriesConfig:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            key: tuple[int, ...] | None = None
        except OSError:
            return load(self.path)  # says why, as a typed error
        else:
            if time.time() - st.st_mtime < RACY_SECONDS:
                return load(self.path)
            key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        seen = self._seen  # one read: another thread may replace it meanwhile
        if seen is not None and seen[0] == key:
            return seen[1]
        conf = load(self.path)
        self._seen = (key, conf)
        return conf


def parse(tree: Mapping[str, Any], source: str = "registries.conf") -> RegistriesConfig:
    search = tree.get("unqualified-search-registries", [])
    if not isinstance(search, list) or not all(isinstance(s, str) for s in search):
        raise InvalidArgument(f"{source}: unqualified-search-registries must be a list of strings")
    registries = []
    for i, entry in enumerate(_tables(tree, "registry", source)):
        where = f"{source}: [[registry]] #{i + 1}"
        if not isinstance(entry, dict):
            raise InvalidArgument(f"{where} is not a table")
        location = _string(entry, "location", where)
        prefix = _string(entry, "prefix", where) or location
        if not prefix:
            raise InvalidArgument(f"{where} needs a prefix or a location")
        if prefix.startswith("*.") and location:
            raise InvalidArgument(f"{where}: a wildcard prefix {prefix!r} cannot have a location")
        mirrors = []
        for j, mirror in enumerate(_tables(entry, "mirror", where)):
            mirror_where = f"{where} mirror #{j + 1}"
            if not isinstance(mirror, dict) or not _string(mirror, "location", mirror_where):
                raise InvalidArgument(f"{mirror_where} needs a location")
            mirrors.append(Mirror(
                _string(mirror, "location", mirror_where),
                _bool(mirror, "insecure", mirror_where),
            ))
        registries.append(Registry(
            prefix=prefix,
            location=location or ("" if prefix.startswith("*.") else prefix),
            insecure=_bool(entry, "insecure", where),
            blocked=_bool(entry, "blocked", where),
            mirrors=tuple(mirrors),
        ))
    return RegistriesConfig(tuple(search), tuple(registries))


def _tables(table: Mapping[str, Any], key: str, where: str) -> list[Any]:
    """``[[key]]``: an array (its items are checked to be tables by the caller)."""
    value = table.get(key, [])
    if not isinstance(value, list):
        raise InvalidArgument(f"{where}: {key} must be an array of tables ([[{key}]])")
    return value


def _string(table: Mapping[str, Any], key: str, where: str) -> str:
    value = table.get(key, "")
    if not isinstance(value, str):
        raise InvalidArgument(f"{where}: {key} must be a string")
    return value


def _bool(table: Mapping[str, Any], key: str, where: str) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        raise InvalidArgument(f"{where}: {key} must be true or false")
    return value
