"""JSON for crid-runtime's hot paths, without importing the ``json`` package.

``import json`` pulls in ``re`` and ``enum``: ~4 ms on every runtime
invocation, paid at least three times per container (create, start, delete),
where the whole verb takes ~20 ms. The documents the runtime reads and
writes (config.json, state.json, an exec's process.json, a hook's state) are
a few kB, so a small parser and writer in plain Python, with no imports at
all, are far cheaper than the import. They read and write what ``json``
does (``tests/oci/test_jsonc.py`` checks them against it, documents and
mutations of them alike): a value ``json.loads`` gives, and ``json.dumps``'s
text. A document this parser does not accept goes to ``json`` itself,
imported only then, so errors are the usual ``json.JSONDecodeError`` (a
``ValueError``) and an oddity here can only cost time, never a different
answer.

In a process that has ``json`` already (the daemon, which runs some verbs
in-process: ``crid.containers.runtime_in_process``), :func:`loads` and
:func:`dumps` hand over to it: its C scanner and encoder are ~10 times
faster than this, for the same answers. :func:`parse` and :func:`write` are
this module's own, always.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from typing import Any

    from crid.jsontypes import Json

_WS = " \t\n\r"
_DIGITS = "0123456789"
_HEX = "0123456789abcdefABCDEF"
_UNESCAPE = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r",
             "t": "\t"}
_ESCAPE = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
           "\t": "\\t"}


class _Invalid(Exception):
    """Not a document this parser takes: ``json`` decides (and words the error)."""


def _no_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON constant {name}")


def loads(s: str | bytes) -> Any:
    """Parse one JSON document (UTF-8 when given bytes)."""
    json = sys.modules.get("json")
    if json is None:
        return parse(s)
    return json.loads(s.decode() if isinstance(s, bytes) else s, parse_constant=_no_constant)


def parse(s: str | bytes) -> Any:
    """:func:`loads` without ``json``."""
    doc = s.decode() if isinstance(s, bytes) else s
    try:
        value, end = _value(doc, _skip(doc, 0))
        if _skip(doc, end) == len(doc):
            return value
    except (_Invalid, IndexError, ValueError, RecursionError):
        pass
    import json

    return json.loads(doc, parse_constant=_no_constant)  # raises the precise error


def _skip(doc: str, i: int) -> int:
    while i < len(doc) and doc[i] in _WS:
        i += 1
    return i


# The hot loops below inline the common cases (one space after a separator,
# a string without escapes): a document is a few hundred tokens, each a
# handful of Python steps.

def _value(doc: str, i: int) -> tuple[Any, int]:
    c = doc[i]
    if c == '"':
        end = doc.find('"', i + 1)
        text = doc[i + 1:end]
        if end > i and "\\" not in text and text.isprintable():
            return text, end + 1
        return _string(doc, i + 1)
    if c == "{":
        return _object(doc, i + 1)
    if c == "[":
        return _array(doc, i + 1)
    if c in _DIGITS or c == "-":
        return _number(doc, i)
    if doc.startswith("true", i):
        return True, i + 4
    if doc.startswith("false", i):
        return False, i + 5
    if doc.startswith("null", i):
        return None, i + 4
    raise _Invalid


def _object(doc: str, i: int) -> tuple[Json, int]:
    obj: Json = {}
    if doc[i] in _WS:
        i = _skip(doc, i)
    if doc[i] == "}":
        return obj, i + 1
    find = doc.find
    while True:
        if doc[i] != '"':
            raise _Invalid
        end = find('"', i + 1)
        key = doc[i + 1:end]
        if end > i and "\\" not in key and key.isprintable():
            i = end + 1
        else:
            key, i = _string(doc, i + 1)
        if doc[i] != ":":
            i = _skip(doc, i)
            if doc[i] != ":":
                raise _Invalid
        i += 1
        if doc[i] in _WS:
            i = _skip(doc, i)
        obj[key], i = _value(doc, i)
        more, i = _after_item(doc, i, "}")
        if not more:
            return obj, i


def _array(doc: str, i: int) -> tuple[list[Any], int]:
    items: list[Any] = []
    if doc[i] in _WS:
        i = _skip(doc, i)
    if doc[i] == "]":
        return items, i + 1
    append = items.append
    while True:
        item, i = _value(doc, i)
        append(item)
        more, i = _after_item(doc, i, "]")
        if not more:
            return items, i


def _after_item(doc: str, i: int, close: str) -> tuple[bool, int]:
    """(True, the next item's index) past a comma, or (False, the index past ``close``)."""
    c = doc[i]
    if c in _WS:
        i = _skip(doc, i)
        c = doc[i]
    if c == ",":
        i += 1
        if doc[i] in _WS:
            i = _skip(doc, i)
        return True, i
    if c == close:
        return False, i + 1
    raise _Invalid


def _number(doc: str, start: int) -> tuple[int | float, int]:
    """-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][-+]?[0-9]+)?: an int unless it has a fraction
    or an exponent, as ``json`` reads it."""
    i = start + 1 if doc[start] == "-" else start
    if doc[i] == "0":
        i += 1
    else:
        i = _digits(doc, i)
    integral = True
    if i < len(doc) and doc[i] == ".":
        i = _digits(doc, i + 1)
        integral = False
    if i < len(doc) and doc[i] in "eE":
        i += 1
        if i < len(doc) and doc[i] in "+-":
            i += 1
        i = _digits(doc, i)
        integral = False
    text = doc[start:i]
    return (int(text) if integral else float(text)), i


def _digits(doc: str, i: int) -> int:
    """Past one or more ASCII digits from ``i``."""
    if doc[i] not in _DIGITS:
        raise _Invalid
    i += 1
    while i < len(doc) and doc[i] in _DIGITS:
        i += 1
    return i


def _string(doc: str, i: int) -> tuple[str, int]:
    """The string whose opening quote is before ``i``, and the index past its end."""
    end = doc.find('"', i)
    if end < 0:
        raise _Invalid
    if doc.find("\\", i, end) < 0:
        return _unescaped(doc[i:end]), end + 1
    parts = []
    while True:
        end = doc.find('"', i)
        if end < 0:
            raise _Invalid
        backslash = doc.find("\\", i, end)
        if backslash < 0:
            parts.append(_unescaped(doc[i:end]))
            return "".join(parts), end + 1
        parts.append(_unescaped(doc[i:backslash]))
        kind = doc[backslash + 1]
        if kind != "u":
            if kind not in _UNESCAPE:
                raise _Invalid
            parts.append(_UNESCAPE[kind])
            i = backslash + 2
            continue
        code = _hex4(doc, backslash + 2)
        i = backslash + 6
        # A high surrogate and a low one escaped right after it are one
        # character; a lone surrogate stays as it is (as json does).
        if 0xD800 <= code <= 0xDBFF and doc.startswith("\\u", i):
            low = _hex4(doc, i + 2)
            if 0xDC00 <= low <= 0xDFFF:
                code = 0x10000 + ((code - 0xD800) << 10 | (low - 0xDC00))
                i += 6
        parts.append(chr(code))


def _hex4(doc: str, i: int) -> int:
    digits = doc[i:i + 4]
    if len(digits) != 4 or not all(c in _HEX for c in digits):
        raise _Invalid
    return int(digits, 16)


def _unescaped(text: str) -> str:
    """``text``, which must hold no control characters (json's strict mode)."""
    if not text.isprintable() and any(c < " " for c in text):
        raise _Invalid
    return text


def dumps(obj: Any) -> str:
    """Compact JSON, like ``json.dumps(obj)``; NaN and Infinity are refused."""
    json = sys.modules.get("json")
    if json is None:
        return write(obj)
    text: str = json.dumps(obj, allow_nan=False)
    return text


def write(obj: Any) -> str:
    """:func:`dumps` without ``json``."""
    out: list[str] = []
    _write(obj, out)
    return "".join(out)


def _write(o: Any, out: list[str]) -> None:
    if isinstance(o, str):
        out.append(_quoted(o))
    elif o is None:
        out.append("null")
    elif o is True:
        out.append("true")
    elif o is False:
        out.append("false")
    elif isinstance(o, int):
        out.append(int.__repr__(o))
    elif isinstance(o, float):
        out.append(_float(o))
    elif isinstance(o, (list, tuple)):
        out.append("[")
        for index, item in enumerate(o):
            if index:
                out.append(", ")
            _write(item, out)
        out.append("]")
    elif isinstance(o, dict):
        out.append("{")
        for index, (key, value) in enumerate(o.items()):
            if index:
                out.append(", ")
            out.append(_quoted(_key(key)))
            out.append(": ")
            _write(value, out)
        out.append("}")
    else:
        raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def _key(key: Any) -> str:
    """A dict key as json writes it: strings as they are, numbers and constants as text."""
    if isinstance(key, str):
        return key
    if isinstance(key, float):
        return _float(key)
    if key is True or key is False or key is None:
        return {True: "true", False: "false", None: "null"}[key]
    if isinstance(key, int):
        return int.__repr__(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _float(value: float) -> str:
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"Out of range float values are not JSON compliant: {value!r}")
    return float.__repr__(value)


def _quoted(s: str) -> str:
    """``s`` as a JSON string in ASCII, as ``json.dumps`` writes it."""
    if s.isascii() and s.isprintable() and '"' not in s and "\\" not in s:
        return f'"{s}"'
    out = ['"']
    for c in s:
        if c in _ESCAPE:
            out.append(_ESCAPE[c])
        elif " " <= c <= "~":
            out.append(c)
        elif ord(c) < 0x10000:
            out.append(f"\\u{ord(c):04x}")
        else:  # as a surrogate pair
            n = ord(c) - 0x10000
            out.append(f"\\u{0xD800 | n >> 10:04x}\\u{0xDC00 | n & 0x3FF:04x}")
    out.append('"')
    return "".join(out)
