"""JSON for crid-runtime's hot paths, without importing the ``json`` package.

``import json`` pulls in ``re`` and ``enum``: ~4 ms on every runtime
invocation, paid at least three times per container (create, start, delete).
``json`` itself is a thin layer over the stdlib's C scanner and encoder
(``_json``); this module drives them directly and parses and writes the same
JSON. A document it cannot parse goes to ``json`` itself, imported only then,
so errors are the usual ``json.JSONDecodeError`` (a ``ValueError``).
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from typing import Any

_WS = " \t\n\r"


def _no_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON constant {name}")


class _ScanContext:
    """The attributes ``_json.make_scanner`` reads from a ``json.JSONDecoder``."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_no_constant)


def _refuse(o: object) -> Any:
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


_scan = _json.make_scanner(_ScanContext())  # type: ignore[arg-type]  # duck-typed
_encode = _json.make_encoder(
    None, _refuse, _json.encode_basestring_ascii, None, ": ", ", ", False, False, False)


def loads(s: str | bytes) -> Any:
    """Parse one JSON document (UTF-8 when given bytes)."""
    doc = s.decode() if isinstance(s, bytes) else s
    try:
        obj, end = _scan(doc, len(doc) - len(doc.lstrip(_WS)))
        if not doc[end:].strip(_WS):
            return obj
    except (StopIteration, ValueError, SystemError):
        # The C scanner words its errors with json.decoder, and fails oddly
        # (SystemError) when that is not imported yet.
        pass
    import json

    return json.loads(doc, parse_constant=_no_constant)  # raises the precise error


def dumps(obj: Any) -> str:
    """Compact JSON, like ``json.dumps(obj)``; NaN and Infinity are refused."""
    return "".join(_encode(obj, 0))
