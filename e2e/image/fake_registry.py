"""A tiny registry on loopback that serves exactly the bytes a test gives it.

The real registry checks digests on upload, so tampered content (bytes that
don't match their digest, truncated bodies, stalls, dropped connections) is
served from here. Routes map a path (``/v2/<repo>/manifests/<ref>``) to a
``Route``; unknown paths answer 404.
"""

from __future__ import annotations

import dataclasses
import threading
import time
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
    hits: int = 0


class FakeRegistry:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        #: path -> how many more requests answer 503 before the route is served.
        self.fail_next: dict[str, int] = {}
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
                if fake.fail_next.get(path, 0) > 0:
                    fake.fail_next[path] -= 1
                    self._send(503, b"busy", "text/plain")
                    return
                route = fake.routes.get(path)
                if route is None:
                    self._send(404, b'{"errors":[{"code":"NOT_FOUND"}]}', "application/json")
                    return
                route.hits += 1
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
