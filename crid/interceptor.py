"""The one place where CRI calls meet errors, logs and metrics.

Every RPC passes through ``CallInterceptor``: it times the call, turns
``crid.errors`` into gRPC status codes (a full disk no code wrapped still
becomes RESOURCE_EXHAUSTED; anything else becomes INTERNAL with its
traceback logged), writes one JSON log line per call (method, duration,
code and the ids the request names) and counts the call in the metrics.
A call that succeeded is logged at debug, as cri-o and containerd do:
kubelet makes several calls a second, and rendering and writing each line
cost ~13 µs of a ~0.6 ms call. Failed calls are logged at warning.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from google.protobuf.message import Message

from crid import disk_full, errors, logs
from crid.clock import Clock
from crid.metrics import Metrics

Unary = Callable[[Any], Awaitable[Any]]
Streaming = Callable[[Any], AsyncIterator[Any]]

# Request fields worth a place in the log line when they are set.
_ID_FIELDS = ("pod_sandbox_id", "container_id")


class Aborted(Exception):
    """The status a call ends with instead of OK: a gRPC code's name and the message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class CallInterceptor:
    """Wraps each RPC's behaviour once, when the server is built."""

    def __init__(self, metrics: Metrics, clock: Clock) -> None:
        self._metrics = metrics
        self._clock = clock
        self._log = logs.get("crid.cri")
        self._counted: dict[str, tuple[Any, Any]] = {}

    def unary(self, method: str, behavior: Unary) -> Unary:
        async def call(request: Any) -> Any:
            with _Call(self, method, request):
                return await behavior(request)

        return call

    def inline(self, method: str, answer: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """For an answer made outside the loop: recorded when it answered; an error
        or None leaves the call to ``unary``, which records it then."""
        def call(request: Any) -> Any:
            started = self._clock.monotonic()
            response = answer(request)
            if response is not None:
                self._record(method, request, "OK", started)
            return response

        return call

    def streaming(self, method: str, behavior: Streaming) -> Streaming:
        async def call(request: Any) -> AsyncIterator[Any]:
            with _Call(self, method, request):
                async for response in behavior(request):
                    yield response

        return call

    def _classify(self, method: str, exc: Exception) -> tuple[str, str]:
        if isinstance(exc, errors.CridError):
            return exc.code, exc.message
        typed = disk_full.as_crid_error(exc)  # a full disk nobody wrapped is still not a bug
        if typed is not None:
            self._log.warning("untyped error", method=method, exc_info=exc)
            return typed.code, typed.message
        self._log.error("unexpected error", method=method, exc_info=exc)
        return "INTERNAL", f"internal error in {method.rsplit('/', 1)[-1]}: {exc!r}"

    def _record(self, method: str, request: Any, code: str, started: float) -> None:
        duration = self._clock.monotonic() - started
        operation = method.rsplit("/", 1)[-1]
        counted = self._counted.get(operation)
        if counted is None:  # labels() looks up under a lock; once per operation is enough
            counted = (self._metrics.operations.labels(operation),
                       self._metrics.operation_latency.labels(operation))
            self._counted[operation] = counted
        counted[0].inc()
        counted[1].observe(duration)
        if code != "OK":
            self._metrics.operation_errors.labels(operation, code).inc()
        level = logging.DEBUG if code == "OK" else logging.WARNING
        if self._log.is_enabled_for(level):  # else the line's fields cost time for nothing
            self._log.log(level, "cri call", method=method, code=code,
                          duration_ms=round(duration * 1000, 3), **_request_ids(request))


class _Call:
    """One call's span, for unary and streaming alike: an ``Exception`` leaves it
    as ``Aborted`` with its status; whatever way it ends (cancelled too, as OK,
    as before), it is recorded once."""

    __slots__ = ("_interceptor", "_method", "_request", "_started")

    def __init__(self, interceptor: CallInterceptor, method: str, request: Any) -> None:
        self._interceptor = interceptor
        self._method = method
        self._request = request
        self._started = interceptor._clock.monotonic()

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 _tb: object) -> None:
        code = "OK"
        try:
            if isinstance(exc, Exception):
                code, message = self._interceptor._classify(self._method, exc)
                raise Aborted(code, message) from None
        finally:
            self._interceptor._record(self._method, self._request, code, self._started)


def _request_ids(request: Any) -> dict[str, str]:
    """The ids a request names (pod, container, image), for the log line."""
    if not isinstance(request, Message):
        return {}
    found: dict[str, str] = {}
    fields = request.DESCRIPTOR.fields_by_name
    for name in _ID_FIELDS:
        if name in fields and getattr(request, name):
            found[name] = getattr(request, name)
    image_spec = getattr(request, "image", None) if "image" in fields else None
    image_name = getattr(image_spec, "image", "")
    if image_name:
        found["image"] = str(image_name)
    return found
