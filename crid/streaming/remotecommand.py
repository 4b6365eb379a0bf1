"""Exec and attach, independent of the wire: run the backend, say how it ended.

Both wire protocols (SPDY streams, WebSocket channels) gather the client's
stdin/stdout/stderr/resize into the backend's stream shapes, call ``run``,
and write the resulting status on their error stream with ``encode_status``:
a Kubernetes ``metav1.Status`` as JSON for ``v4.channel.k8s.io`` and later,
its message as plain text (nothing on success) for the older protocols.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable

from crid import logs
from crid.errors import CridError
from crid.jsontypes import Json
from crid.streaming.backend import Backend, InputStream, OutputStream, TerminalSize
from crid.streaming.tokens import AttachRequest, ExecRequest

log = logs.get("crid.streaming")

Status = Json


def success() -> Status:
    return {"metadata": {}, "status": "Success"}


def exit_failure(cmd: tuple[str, ...], code: int) -> Status:
    """kubelet's form, which clients parse: the exit code is the cause's message."""
    return {
        "metadata": {},
        "status": "Failure",
        "message": "command terminated with non-zero exit code: error executing command "
                   f"[{' '.join(cmd)}], exit code {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def internal_error(message: str) -> Status:
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"Internal error occurred: {message}",
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    }


def encode_status(status: Status, *, structured: bool) -> bytes:
    """The error stream's bytes: JSON (v4+), or the bare message (v1-v3; b'' if success)."""
    if structured:
        return json.dumps(status, separators=(",", ":")).encode()
    return b"" if status["status"] == "Success" else str(status["message"]).encode()


async def sizes(read: Callable[[], Awaitable[bytes]]) -> AsyncIterator[TerminalSize]:
    """Terminal sizes from a stream of JSON objects ``{"Width":W,"Height":H}``.

    Objects may be split across reads or several may share one; anything that
    is not a size object is skipped. Ends when ``read`` returns b''.
    """
    decoder, pending = json.JSONDecoder(), ""
    while chunk := await read():
        pending += chunk.decode(errors="replace")
        while pending.strip():
            try:
                value, end = decoder.raw_decode(pending.lstrip())
            except json.JSONDecodeError:
                break  # incomplete: wait for more
            pending = pending.lstrip()[end:]
            if isinstance(value, dict):
                width, height = value.get("Width"), value.get("Height")
                if isinstance(width, int) and isinstance(height, int):
                    yield TerminalSize(width, height)
        if len(pending) > 4096:  # garbage that will never parse
            pending = ""


async def run(backend: Backend, request: ExecRequest | AttachRequest, *,
              stdin: InputStream | None, stdout: OutputStream | None,
              stderr: OutputStream | None,
              resize: AsyncIterator[TerminalSize] | None) -> Status:
    """Run the exec or attach on the backend; the status to report."""
    try:
        if isinstance(request, ExecRequest):
            code = await backend.exec(request.container_id, list(request.cmd), tty=request.tty,
                                      stdin=stdin, stdout=stdout, stderr=stderr, resize=resize)
            return success() if code == 0 else exit_failure(request.cmd, code)
        await backend.attach(request.container_id, tty=request.tty, stdin=stdin,
                             stdout=stdout, stderr=stderr, resize=resize)
        return success()
    except CridError as exc:
        return internal_error(exc.message)
    except OSError as exc:
        log.warning("streaming backend failed", kind=request.kind, error=str(exc))
        return internal_error(str(exc))
