"""Pending streaming requests, each behind a random single-use token.

The CRI ``Exec``/``Attach``/``PortForward`` calls do not run anything: they
store the request here and return a URL carrying the token. The client (the
kubelet, crictl) then connects to that URL; the server takes the request out
of the cache, which makes a token good for exactly one connection. Tokens
that nobody uses expire after ``TTL_SECONDS``, as in kubelet's streaming
server. The token is the only authorization, so it is 144 random bits.
"""

from __future__ import annotations

import collections
import dataclasses
import secrets

from crid.clock import Clock
from crid.errors import InvalidArgument, ResourceExhausted

TTL_SECONDS = 60.0
MAX_PENDING = 10_000  # a bound on memory if a client asks and never connects
TOKEN_BYTES = 18      # 144 bits, 24 URL-safe characters


@dataclasses.dataclass(frozen=True)
class ExecRequest:
    container_id: str
    cmd: tuple[str, ...]
    tty: bool = False
    stdin: bool = False
    stdout: bool = True
    stderr: bool = True

    kind = "exec"


@dataclasses.dataclass(frozen=True)
class AttachRequest:
    container_id: str
    tty: bool = False
    stdin: bool = False
    stdout: bool = True
    stderr: bool = True

    kind = "attach"


@dataclasses.dataclass(frozen=True)
class PortForwardRequest:
    pod_sandbox_id: str
    ports: tuple[int, ...] = ()

    kind = "portforward"


Request = ExecRequest | AttachRequest | PortForwardRequest
KINDS = ("exec", "attach", "portforward")


class TokenCache:
    """Requests by token; ``take`` hands each one out at most once."""

    def __init__(self, clock: Clock, ttl: float = TTL_SECONDS) -> None:
        self._clock = clock
        self._ttl = ttl
        # insertion order = expiry order, so expiring is popping from the front
        self._pending: collections.OrderedDict[str, tuple[float, Request]] = (
            collections.OrderedDict())

    def put(self, request: Request) -> str:
        """Store ``request``; the token that fetches it."""
        validate(request)
        self._expire()
        if len(self._pending) >= MAX_PENDING:
            raise ResourceExhausted(
                f"{MAX_PENDING} streaming requests are pending; connect to or let "
                "some of the URLs already handed out expire first")
        token = secrets.token_urlsafe(TOKEN_BYTES)
        self._pending[token] = (self._clock.monotonic() + self._ttl, request)
        return token

    def take(self, kind: str, token: str) -> Request | None:
        """The request behind ``token`` if it is of ``kind`` and live; once only."""
        self._expire()
        entry = self._pending.get(token)
        if entry is None or entry[1].kind != kind:
            return None
        del self._pending[token]
        return entry[1]

    def __len__(self) -> int:
        self._expire()
        return len(self._pending)

    def _expire(self) -> None:
        now = self._clock.monotonic()
        while self._pending:
            token, (deadline, _) = next(iter(self._pending.items()))
            if deadline > now:
                break
            del self._pending[token]


def validate(request: Request) -> None:
    """Refuse what no session could serve, as kubelet's streaming server does."""
    if isinstance(request, PortForwardRequest):
        if not request.pod_sandbox_id:
            raise InvalidArgument("pod_sandbox_id is required")
        if not all(0 < port < 65536 for port in request.ports):
            raise InvalidArgument(f"ports {list(request.ports)} must be in 1-65535")
        return
    if not request.container_id:
        raise InvalidArgument("container_id is required")
    if isinstance(request, ExecRequest) and not request.cmd:
        raise InvalidArgument("cmd is required")
    if request.tty and request.stderr:
        raise InvalidArgument("tty and stderr cannot both be true: a terminal has one output")
    if not (request.stdin or request.stdout or request.stderr):
        raise InvalidArgument("one of stdin, stdout or stderr must be true")


def url(base_url: str, request: Request, token: str) -> str:
    """``http://HOST:PORT/{exec,attach,portforward}/TOKEN``."""
    return f"{base_url.rstrip('/')}/{request.kind}/{token}"
