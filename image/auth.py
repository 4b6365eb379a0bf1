"""Registry credentials: from the CRI request or a docker ``config.json``.

``Credentials`` is what the registry client presents: a username and
password (Basic, or to obtain a Bearer token), an identity token (an OAuth2
refresh token exchanged at the token realm), or a registry token (a Bearer
token used as is). ``WWW-Authenticate`` challenges are parsed here too.

Credentials from a CRI request are scoped to one registry (``server``: the
host ``AuthConfig.server_address`` names, or, when it is empty, the image's
own registry) and ``applies_to`` says whether an endpoint may see them:
never a mirror, whose only credentials are its own entry in the auth file
(as containers/image does; containerd's ``ParseAuth`` likewise drops request
credentials for a host that ``server_address`` does not name). A pull secret
for one registry thus never reaches a mirror or another registry.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from crid.image.reference import DEFAULT_DOMAIN

from crid.errors import InvalidArgument

DOCKER_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io")


@dataclasses.dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = ""
    identity_token: str = ""
    registry_token: str = ""
    server: str = ""  # the registry host these are for; "" = the image's own registry

    def __bool__(self) -> bool:
        return bool(self.username or self.identity_token or self.registry_token)

    def applies_to(self, image_registry: str, host: str, *, mirror: bool) -> bool:
        """May an endpoint ``host`` serving an image of ``image_registry`` see these?

        Not a mirror; otherwise the named server must be the image's registry
        or the endpoint itself (a registries.conf ``location`` standing in for it).
        """
        if mirror:
            return False
        named = canonical_host(self.server or image_registry)
        return named in (canonical_host(image_registry), canonical_host(host))


def from_cri(
    username: str = "", password: str = "", auth: str = "",
    identity_token: str = "", registry_token: str = "", server_address: str = "",
) -> Credentials | None:
    """The CRI ``AuthConfig`` fields; ``auth`` is base64 ``user:password``."""
    if auth and not username:
        username, password = decode_auth(auth, "AuthConfig.auth")
    server = canonical_host(server_address) if server_address else ""
    found = Credentials(username, password, identity_token, registry_token, server)
    return found if found else None


def canonical_host(address: str) -> str:
    """The registry host an address names: ``https://index.docker.io/v1/`` is
    ``docker.io``, ``http://r.example:5000/v2/`` is ``r.example:5000``."""
    host = address.strip().lower()
    for scheme in ("https://", "http://"):
        host = host.removeprefix(scheme)
    host = host.split("/", 1)[0]
    return DEFAULT_DOMAIN if host in (*DOCKER_HUB_KEYS, DEFAULT_DOMAIN) else host


def decode_auth(value: str, where: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"{where} is not base64 of user:password") from exc
    username, sep, password = decoded.partition(":")
    if not sep:
        raise InvalidArgument(f"{where} decodes to no user:password pair")
    return username, password


def from_auth_file(path: Path, host: str) -> Credentials | None:
    """Credentials for ``host`` from a docker ``config.json`` (absent file: none)."""
    try:
        document: Any = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"auth file {path}: cannot read: {exc}") from exc
    auths = document.get("auths", {}) if isinstance(document, dict) else {}
    if not isinstance(auths, dict):
        return None
    keys = [host, f"https://{host}", f"http://{host}", f"https://{host}/v1/", f"https://{host}/v2/"]
    if host in (DEFAULT_DOMAIN, *DOCKER_HUB_KEYS):
        keys += DOCKER_HUB_KEYS
    for key in keys:
        entry = auths.get(key)
        if isinstance(entry, dict):
            username, password = str(entry.get("username", "")), str(entry.get("password", ""))
            if entry.get("auth") and not username:
                username, password = decode_auth(str(entry["auth"]), f"{path} auths.{key}.auth")
            found = Credentials(
                username, password,
                identity_token=str(entry.get("identitytoken", "")),
                registry_token=str(entry.get("registrytoken", "")),
            )
            if found:
                return found
    return None


_PARAM = re.compile(r'(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="...",service="..."`` -> ("bearer", {realm, service, ...})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _PARAM.finditer(rest)
    }
    return scheme.lower(), params


def basic_header(credentials: Credentials) -> str:
    raw = f"{credentials.username}:{credentials.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()
