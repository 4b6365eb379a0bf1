"""The OCI distribution client: manifests, indexes and blob streams, over httpx.

Owns one conversation with one endpoint (``host/repository``): picking
``https`` or, for insecure endpoints, falling back to plain ``http``;
answering ``WWW-Authenticate`` challenges (Bearer token flow, Basic);
retrying with backoff on 5xx, 429 and dropped connections; following
redirects (blobs usually live behind one); bounding manifest size; and
resuming a blob with ``Range`` after the connection drops mid-body.

Every byte is checked against the digest that named it: manifests before
they are parsed, blobs as they stream (``BlobStream.finish``). The read
timeout is the pull's "no progress" limit: a registry that sends nothing for
that long fails the pull. Reads happen only when the consumer asks, so time
spent unpacking never counts against it.

Error translation happens here, once: transport errors become
``Unavailable``, a stall ``DeadlineExceeded``, 404 ``NotFound``, refused
credentials ``FailedPrecondition``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from crid.image import auth
from crid.image.auth import Credentials
from crid.image.content import DigestMismatch
from crid.image.reference import is_digest
from crid.image.registries import Endpoint

from crid.errors import (
    CridError,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from crid.jsontypes import Json

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
ACCEPT = ", ".join((*MANIFEST_TYPES, *INDEX_TYPES))
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
RETRIES = 4
BACKOFF_SECONDS = 0.2
CHUNK = 1 << 20
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclasses.dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: dict[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def parse(cls, value: Any, where: str) -> Descriptor:
        try:
            platform = value.get("platform") or {}
            found = cls(str(value.get("mediaType", "")), str(value["digest"]), int(value["size"]),
                        {k: str(v) for k, v in platform.items() if isinstance(v, str)})
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise InvalidArgument(f"{where}: malformed descriptor: {value!r}") from exc
        # The digest goes into URLs and file names: only the one safe form.
        if not is_digest(found.digest) or found.size < 0:
            raise InvalidArgument(f"{where}: descriptor with a bad digest or size: {value!r}")
        return found


@dataclasses.dataclass(frozen=True)
class Manifest:
    digest: str
    media_type: str
    data: bytes
    document: Json


class Transport:
    """httpx clients shared by every pull: one verifying TLS, one not.

    Redirects are followed by httpx, which drops ``Authorization`` when the
    new URL is of another origin (scheme, host or port; only an http to https
    upgrade of the same host keeps it), as Go's net/http does for another
    host: a token for the registry is never replayed to the blob store it
    redirects to (``e2e/security/test_registry_credentials.py`` proves it).
    """

    def __init__(self, timeout: float, sleep: Callable[[float], None] = time.sleep) -> None:
        self.timeout = timeout
        self.sleep = sleep
        self._schemes: dict[str, str] = {}
        self._lock = threading.Lock()

    def _client(self, verify: bool) -> httpx.Client:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=16)
        timeouts = httpx.Timeout(connect=30.0, read=self.timeout, write=60.0, pool=self.timeout)
        return httpx.Client(timeout=timeouts, limits=limits, follow_redirects=True,
                            verify=verify)

    # Made on first use (a verifying client reads the CA bundle), or by open().
    @functools.cached_property
    def secure(self) -> httpx.Client:
        return self._client(verify=True)

    @functools.cached_property
    def insecure(self) -> httpx.Client:
        return self._client(verify=False)

    def open(self) -> None:
        """Make both clients now (at start-up) rather than in the first pull."""
        _ = self.secure, self.insecure

    def close(self) -> None:
        for made in ("secure", "insecure"):
            client = self.__dict__.get(made)
            if client is not None:
                client.close()

    def scheme(self, endpoint: Endpoint) -> str:
        """``https``, or ``http`` for an insecure endpoint that does not speak TLS."""
        key = f"{endpoint.host}/{endpoint.insecure}"
        with self._lock:
            if key in self._schemes:
                return self._schemes[key]
        client = self.insecure if endpoint.insecure else self.secure
        try:
            client.get(f"https://{endpoint.host}/v2/").close()
            chosen = "https"
        except httpx.TransportError as exc:
            tls = "SSL" in str(exc) or "certificate" in str(exc)
            if not endpoint.insecure:
                raise Unavailable(
                    f"registry {endpoint.host}: cannot talk HTTPS: {_why(exc)}"
                    + (". If it serves plain HTTP or an untrusted certificate, set "
                       "insecure = true for it in registries.conf" if tls else "")
                ) from None
            if not tls:
                return "http"  # nothing answered: decide again next time
            chosen = "http"
        with self._lock:
            self._schemes[key] = chosen
        return chosen


class RegistryClient:
    """Requests to one endpoint, authenticated as needed."""

    def __init__(self, transport: Transport, endpoint: Endpoint,
                 credentials: Credentials | None) -> None:
        self.transport = transport
        self.endpoint = endpoint
        self.credentials = credentials
        self._client = transport.insecure if endpoint.insecure else transport.secure
        self._authorization: str | None = None
        self._base = ""

    def _url(self, path: str) -> str:
        if not self._base:
            scheme = self.transport.scheme(self.endpoint)
            self._base = f"{scheme}://{self.endpoint.host}/v2/{self.endpoint.repository}"
        return f"{self._base}/{path}"

    def request(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        """GET ``path`` as a stream; the caller closes the response."""
        url = self._url(path)
        answered_challenge = False
        attempt = 0
        while True:
            sent = dict(headers or {})
            if self._authorization:
                sent["Authorization"] = self._authorization
            try:
                response = self._client.send(self._client.build_request("GET", url, headers=sent),
                                             stream=True)
            except httpx.TimeoutException as exc:
                raise self.stalled(exc) from None
            except httpx.TransportError as exc:
                attempt += 1
                if attempt >= RETRIES:
                    raise Unavailable(f"{self.endpoint}: {_why(exc)}") from None
                self.transport.sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
                continue
            if response.status_code == 401 and not answered_challenge:
                challenge = response.headers.get("WWW-Authenticate", "")
                response.close()
                self._authorization = self._authenticate(challenge)
                answered_challenge = True
                continue
            if response.status_code in _RETRY_STATUS and attempt + 1 < RETRIES:
                response.close()
                attempt += 1
                self.transport.sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
                continue
            if response.status_code < 400:
                return response
            response.read()
            response.close()
            raise self._status_error(response, path)

    def stalled(self, exc: Exception) -> DeadlineExceeded:
        return DeadlineExceeded(
            f"{self.endpoint}: no progress for {self.transport.timeout:g}s ({_why(exc)}); "
            "giving up (crid.image.pull_progress_timeout)"
        )

    def _status_error(self, response: httpx.Response, path: str) -> CridError:
        code = response.status_code
        where = f"{self.endpoint}: GET {path}"
        if code == 401:
            if self.credentials:
                return FailedPrecondition(f"{where}: the registry refused the credentials (401)")
            return FailedPrecondition(f"{where}: authentication required (401); "
                                      "pass credentials or add them to the auth file")
        if code == 403:
            return FailedPrecondition(f"{where}: access denied (403)")
        if code == 404:
            return NotFound(f"{where}: not found (404)")
        return Unavailable(f"{where}: HTTP {code} {response.text[:200]!r}")

    def _authenticate(self, challenge: str) -> str:
        scheme, params = auth.parse_challenge(challenge)
        creds = self.credentials
        if creds and creds.registry_token:
            return f"Bearer {creds.registry_token}"
        if scheme == "basic":
            if not creds or not creds.username:
                raise FailedPrecondition(
                    f"{self.endpoint}: authentication required (basic); pass credentials "
                    "in the pull request or add them to the auth file")
            return auth.basic_header(creds)
        if scheme == "bearer" and params.get("realm"):
            return "Bearer " + self._token(params)
        raise FailedPrecondition(f"{self.endpoint}: unsupported authentication {challenge!r}")

    def _token(self, params: dict[str, str]) -> str:
        scope = params.get("scope") or f"repository:{self.endpoint.repository}:pull"
        query = {"scope": scope, **({"service": params["service"]} if "service" in params else {})}
        creds = self.credentials
        try:
            if creds and creds.identity_token:
                response = self._client.post(params["realm"], data={
                    "grant_type": "refresh_token", "refresh_token": creds.identity_token,
                    "client_id": "crid", **query})
            else:
                headers = {"Authorization": auth.basic_header(creds)} if creds else {}
                response = self._client.get(params["realm"], params=query, headers=headers)
        except httpx.TransportError as exc:
            raise Unavailable(f"token service {params['realm']}: {_why(exc)}") from None
        if response.status_code in (401, 403):
            raise FailedPrecondition(
                f"{self.endpoint}: the token service refused the credentials "
                f"({response.status_code})")
        if response.status_code >= 400:
            raise Unavailable(f"token service {params['realm']}: HTTP {response.status_code}")
        try:
            body = response.json()
            return str(body.get("token") or body["access_token"])
        except (ValueError, KeyError, AttributeError):
            raise Unavailable(f"token service {params['realm']}: no token in answer") from None

    # --- manifests -------------------------------------------------------

    def manifest(self, version: str, expected: Descriptor | None = None) -> Manifest:
        """The manifest or index named by tag or digest, verified."""
        response = self.request(f"manifests/{version}", {"Accept": ACCEPT})
        try:
            declared = int(response.headers.get("Content-Length") or 0)
            if declared > MAX_MANIFEST_BYTES:
                raise InvalidArgument(self._too_big(version))
            data = bytearray()
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > MAX_MANIFEST_BYTES:
                    raise InvalidArgument(self._too_big(version))
        except httpx.TimeoutException as exc:
            raise self.stalled(exc) from None
        except httpx.TransportError as exc:
            raise Unavailable(f"{self.endpoint}: manifest {version}: {_why(exc)}") from None
        finally:
            response.close()
        body = bytes(data)
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        wanted = expected.digest if expected else (version if version.startswith("sha256:") else
                                                   response.headers.get("Docker-Content-Digest"))
        if wanted and wanted != digest:
            raise DigestMismatch(
                f"{self.endpoint}: manifest {version} does not match its digest: "
                f"expected {wanted}, got {digest}")
        if expected and expected.size != len(body):
            raise DigestMismatch(f"{self.endpoint}: manifest {version}: size {len(body)} "
                                 f"!= descriptor size {expected.size}")
        return parse_manifest(body, digest, response.headers.get("Content-Type", ""),
                              str(self.endpoint), version)

    def _too_big(self, version: str) -> str:
        return f"{self.endpoint}: manifest {version} exceeds {MAX_MANIFEST_BYTES} bytes"

    def blob_bytes(self, descriptor: Descriptor, limit: int) -> bytes:
        """A small blob (a config) read whole and verified."""
        if descriptor.size > limit:
            raise InvalidArgument(f"{self.endpoint}: blob {descriptor.digest} is "
                                  f"{descriptor.size} bytes, more than the {limit} allowed")
        stream = BlobStream(self, descriptor)
        try:
            data = stream.read(-1)
            stream.finish()
        finally:
            stream.close()
        return data

    def blob(self, descriptor: Descriptor,
             on_bytes: Callable[[int], None] | None = None) -> BlobStream:
        return BlobStream(self, descriptor, on_bytes)


class BlobStream:
    """A blob's bytes as a readable stream, verified and resumable.

    ``read`` never returns more than the descriptor's size; ``finish`` reads
    what is left and raises ``DigestMismatch`` unless size and digest match.
    ``on_bytes`` is told of every chunk received (progress and metrics).
    """

    def __init__(self, client: RegistryClient, descriptor: Descriptor,
                 on_bytes: Callable[[int], None] | None = None) -> None:
        self.client = client
        self.descriptor = descriptor
        self.on_bytes = on_bytes
        self.offset = 0
        self._hash = hashlib.sha256()
        self._buffer = b""
        self._pos = 0
        self._skip = 0
        self._error: CridError | None = None
        self._response: httpx.Response | None = None
        self._chunks: Iterator[bytes] | None = None
        self._ended = False

    def _open(self) -> None:
        headers = {"Range": f"bytes={self.offset}-"} if self.offset else {}
        response = self.client.request(f"blobs/{self.descriptor.digest}", headers)
        # Without range support the body starts over: skip what we already have.
        self._skip = self.offset if self.offset and response.status_code != 206 else 0
        self._response = response
        self._chunks = response.iter_raw()

    def _next_chunk(self) -> bytes:
        if self._error is not None:
            raise self._error
        try:
            return self._receive()
        except CridError as exc:
            self._error = exc
            raise

    def _receive(self) -> bytes:
        resumes = 0
        while not self._ended:
            if self._chunks is None:
                self._open()
            assert self._chunks is not None
            try:
                chunk = next(self._chunks)
            except StopIteration:
                self._ended = True
                return b""
            except httpx.TimeoutException as exc:
                raise self.client.stalled(exc) from None
            except (httpx.ReadError, httpx.RemoteProtocolError) as exc:
                resumes += 1
                self.close()
                if resumes >= RETRIES:
                    raise Unavailable(f"{self.client.endpoint}: blob {self.descriptor.digest}: "
                                      f"connection lost {resumes} times: {_why(exc)}") from None
                self.client.transport.sleep(BACKOFF_SECONDS * resumes)
                continue
            if self._skip:
                dropped = min(self._skip, len(chunk))
                self._skip -= dropped
                chunk = chunk[dropped:]
                if not chunk:
                    continue
            self._take(chunk)
            return chunk
        return b""

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes (fewer is not the end; ``b""`` is)."""
        if self._pos >= len(self._buffer):
            self._buffer, self._pos = self._next_chunk(), 0
        if size < 0:
            parts = [self._buffer[self._pos:]]
            self._buffer, self._pos = b"", 0
            while chunk := self._next_chunk():
                parts.append(chunk)
            return b"".join(parts)
        out = self._buffer[self._pos:self._pos + size]
        self._pos += len(out)
        return out

    def _take(self, chunk: bytes) -> None:
        room = self.descriptor.size - self.offset
        if len(chunk) > room:
            raise DigestMismatch(
                f"{self.client.endpoint}: blob {self.descriptor.digest} is longer than the "
                f"{self.descriptor.size} bytes its descriptor says")
        self.offset += len(chunk)
        self._hash.update(chunk)
        if self.on_bytes:
            self.on_bytes(len(chunk))

    def finish(self) -> None:
        """Read to the end and verify; re-raises a transfer error that already happened."""
        while self.read(CHUNK):
            pass
        if self.offset != self.descriptor.size:
            raise DigestMismatch(
                f"{self.client.endpoint}: blob {self.descriptor.digest} is truncated: got "
                f"{self.offset} of {self.descriptor.size} bytes")
        actual = "sha256:" + self._hash.hexdigest()
        if actual != self.descriptor.digest:
            raise DigestMismatch(
                f"{self.client.endpoint}: blob does not match its digest: expected "
                f"{self.descriptor.digest}, got {actual}")

    def close(self) -> None:
        if self._response is not None:
            self._response.close()
        self._response = None
        self._chunks = None


def _why(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text[:300]


def parse_manifest(body: bytes, digest: str, content_type: str, endpoint: str,
                   version: str) -> Manifest:
    """A verified manifest or index body as a ``Manifest``, its media type decided.

    The type is the document's ``mediaType``, else the response's
    ``Content-Type``, else guessed from its keys; anything but an image
    manifest or index is refused.
    """
    where = f"{endpoint}:{version}"
    document = json_object(body, f"{endpoint}: manifest {version}")
    media_type = str(document.get("mediaType") or content_type.split(";")[0].strip())
    if media_type in DOCKER_SCHEMA1 or document.get("schemaVersion") == 1:
        raise FailedPrecondition(
            f"{where} is a Docker schema 1 image, which crid does not "
            "support (deprecated since 2017); push it again with a current tool")
    if not media_type and "manifests" in document:
        media_type = OCI_INDEX
    elif not media_type and "layers" in document:
        media_type = OCI_MANIFEST
    if media_type not in (*MANIFEST_TYPES, *INDEX_TYPES):
        raise FailedPrecondition(f"{where} has media type {media_type!r}, not an image manifest")
    return Manifest(digest, media_type, body, document)


def json_object(data: bytes, what: str) -> Json:
    """``data`` parsed as a JSON object, or InvalidArgument saying ``what`` is not one."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested past the stack
        raise InvalidArgument(f"{what} is not JSON") from exc
    if not isinstance(value, dict):
        raise InvalidArgument(f"{what} is not a JSON object")
    return value
