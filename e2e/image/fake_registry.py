"""A tiny registry on loopback that serves exactly the bytes a test gives it.

The real registry checks digests on upload, so tampered content (bytes that
don't match their digest, truncated bodies, stalls, dropped connections) is
served from here. Routes map a path (``/v2/<repo>/manifests/<ref>``) to a
``Route``; unknown paths answer 404.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from e2e.fixtures.images import Image


@dataclasses.dataclass
class Route:
    body: bytes
    content_type: str = "application/octet-stream"
    #: Send only this many bytes of the body, then close (Content-Length stays full).
    cut_at: int | None = None
    #: Cut only on the first N requests; later ones (Range resumes) get everything.
    cut_times: int = 1_000_000
    #: Sleep this long before the body (a stalled registry).
    stall: float = 0.0
    supports_range: bool = True
    #: Answer 307 to this path instead (blobs usually live behind a redirect).
    redirect_to: str = ""
    hits: int = 0


class FakeRegistry:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        #: path -> how many more requests answer 503 before the route is served.
        self.fail_next: dict[str, int] = {}
        #: (user, password): require a Bearer token from /token, given for these.
        self.bearer: tuple[str, str] | None = None
        self.token = "fake-token-" + base64.b16encode(os.urandom(8)).decode()
        self.refresh_token = "fake-refresh-" + base64.b16encode(os.urandom(8)).decode()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                fake.requests.append((self.path, dict(self.headers)))
                if self.path == "/v2/":
                    self._send(200, b"{}", "application/json")
                    return
                path = self.path.split("?")[0]
                if fake.bearer is not None and not self._authorized(path):
                    return
                if fake.fail_next.get(path, 0) > 0:
                    fake.fail_next[path] -= 1
                    self._send(503, b"busy", "text/plain")
                    return
                route = fake.routes.get(path)
                if route is None:
                    self._send(404, b'{"errors":[{"code":"NOT_FOUND"}]}', "application/json")
                    return
                route.hits += 1
                if route.redirect_to:
                    self.send_response(307)
                    self.send_header("Location", route.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body, status = route.body, 200
                start = 0
                wanted = self.headers.get("Range", "")
                if wanted.startswith("bytes=") and route.supports_range:
                    start = int(wanted[6:].split("-")[0])
                    status = 206
                self.send_response(status)
                self.send_header("Content-Type", route.content_type)
                self.send_header("Content-Length", str(len(body) - start))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.end_headers()
                if route.stall:
                    time.sleep(route.stall)
                payload = body[start:]
                if route.cut_at is not None and route.hits <= route.cut_times:
                    self.wfile.write(payload[: route.cut_at])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(payload)

            def do_POST(self) -> None:
                """The OAuth2 token endpoint: a refresh token (identity token) for a token."""
                length = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                fake.requests.append((self.path, dict(self.headers)))
                if (self.path == "/token" and form.get("grant_type") == ["refresh_token"]
                        and form.get("refresh_token") == [fake.refresh_token]):
                    self._send(200, json.dumps({"access_token": fake.token}).encode(),
                               "application/json")
                else:
                    self._send(401, b"{}", "application/json")

            def _authorized(self, path: str) -> bool:
                assert fake.bearer is not None
                given = self.headers.get("Authorization", "")
                if path == "/token":
                    user, password = fake.bearer
                    expected = base64.b64encode(f"{user}:{password}".encode()).decode()
                    if given == f"Basic {expected}":
                        self._send(200, json.dumps({"token": fake.token}).encode(),
                                   "application/json")
                    else:
                        self._send(401, b"{}", "application/json")
                    return False
                if given == f"Bearer {fake.token}":
                    return True
                repository = path.removeprefix("/v2/").rsplit("/", 2)[0]
                self.send_response(401)
                self.send_header("WWW-Authenticate",
                                 f'Bearer realm="http://{fake.host}/token",service="fake",'
                                 f'scope="repository:{repository}:pull"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return False

            def _send(self, code: int, body: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def add_image(self, repository: str, tag: str, image: Image) -> dict[str, Route]:
        """Serve ``image`` as ``repository:tag``; returns its routes by digest."""
        routes: dict[str, Route] = {}
        for blob in [*image.layer_blobs(), image.config_blob]:
            routes[blob.digest] = Route(blob.data)
            self.routes[f"/v2/{repository}/blobs/{blob.digest}"] = routes[blob.digest]
        manifest = image.manifest_blob
        self.routes[f"/v2/{repository}/manifests/{tag}"] = Route(manifest.data, manifest.media_type)
        return routes

    def __enter__(self) -> FakeRegistry:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
