"""crid.oci.jsonc parses and writes what ``json`` does, and fails the same way.

``json`` is imported here, so ``loads`` and ``dumps`` would hand over to it:
the module's own ``parse`` and ``write`` are what is checked against it."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest
from crid.oci import jsonc

DOCS = [
    '{"ociVersion": "1.0.2", "process": {"args": ["sh", "-c", "echo \\u00e9"], "user": '
    '{"uid": 0}}, "linux": {"resources": {"cpu": {"quota": -1, "shares": 2.5e3}}}}',
    " [] ",
    '"just a string"',
    "12",
    '{"emoji": "\\ud83d\\ude00", "null": null, "t": true, "f": false}\n',
]


@pytest.mark.parametrize("doc", DOCS)
def test_same_values_as_json(doc: str) -> None:
    assert jsonc.parse(doc) == json.loads(doc)
    assert jsonc.parse(doc.encode()) == json.loads(doc)
    assert jsonc.write(json.loads(doc)) == json.dumps(json.loads(doc))


@pytest.mark.parametrize("bad", ["", "{ not json", '{"a": 1} extra', "[1,]", "'x'", "NaN",
                                 '{"a" 1}'])
def test_bad_documents_raise_value_error(bad: str) -> None:
    with pytest.raises(ValueError):
        jsonc.parse(bad)


def test_errors_are_worded_without_json_imported_first() -> None:
    # The C scanner needs json.decoder to word its errors; in a fresh runtime
    # process nothing has imported it yet.
    code = ("import sys; from crid.oci import jsonc\n"
            "assert 'json' not in sys.modules\n"
            "try:\n    jsonc.loads('{ not json')\n"
            "except ValueError as e:\n    print(type(e).__name__, e)\n")
    out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.startswith("JSONDecodeError Expecting property name"), out


def test_dumps_refuses_what_json_cannot_carry() -> None:
    with pytest.raises(ValueError):
        jsonc.write({"x": float("nan")})
    with pytest.raises(TypeError):
        jsonc.write({"x": object()})


# --- against json, on many documents and on broken ones -------------------

_TEXTS = ["", "plain", 'q"uote', "back\\slash", "tab\there", "nl\n", "\x00\x1f\x7f", "é",
          "中文", "😀", "\ud800", "\udfff x", "\u2028", "/", "a\u00a0b"]


def _random_value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return rng.choice(_TEXTS) + rng.choice(_TEXTS)
    if kind == 1:
        return rng.choice([0, -0, 1, -1, 7, 2**63, -(2**70), 12345678901234567890])
    if kind == 2:
        return rng.choice([0.0, -0.0, 0.5, -2.5e-7, 1e300, 3.141592653589793, 1e22, 5e-324])
    if kind == 3:
        return rng.choice([True, False, None])
    if kind in (4, 5):
        return rng.choice(_TEXTS)
    if kind in (6, 7):
        return {rng.choice(_TEXTS) + str(n): _random_value(rng, depth + 1)
                for n in range(rng.randrange(4))}
    return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]


def _spaced(text: str, rng: random.Random) -> str:
    """``text`` with whitespace added between tokens (outside strings)."""
    out, in_string, escaped = [], False, False
    for c in text:
        if not in_string and c in ",:[]{}" and rng.random() < 0.3:
            out.append(rng.choice([" ", "\n", "\t", "\r", "  "]))
        out.append(c)
        if in_string:
            in_string = escaped or c != '"'
            escaped = not escaped and c == "\\"
        elif c == '"':
            in_string = True
    return "".join(out)


def _refuse(name: str) -> object:
    raise ValueError(name)  # NaN and Infinity are not JSON: jsonc refuses them


def _theirs(doc: str) -> tuple[str, object]:
    try:
        return "ok", json.loads(doc, parse_constant=_refuse)
    except (ValueError, RecursionError) as exc:
        return "error", type(exc)


def _ours(doc: str) -> tuple[str, object]:
    try:
        return "ok", jsonc.parse(doc)
    except (ValueError, RecursionError) as exc:
        return "error", type(exc)


def _same(a: tuple[str, object], b: tuple[str, object]) -> bool:
    # repr tells -0.0 from 0.0 and 1 from 1.0 and True; nan never appears
    return a[0] == b[0] and repr(a[1]) == repr(b[1])


def test_random_documents_read_and_write_as_json_does() -> None:
    rng = random.Random(18)
    for _ in range(2000):
        value = _random_value(rng)
        text = json.dumps(value)
        assert jsonc.write(value) == text
        for doc in (text, _spaced(text, rng), json.dumps(value, ensure_ascii=False)):
            assert _same(_ours(doc), _theirs(doc)), doc


def test_broken_documents_fail_or_read_as_json_does() -> None:
    rng = random.Random(5)
    alphabet = '{}[]:,"\\u0123456789abcdefEe+-. \n\ttruefalsenullNaN\x00\x1f'
    for _ in range(5000):
        doc = list(json.dumps(_random_value(rng)))
        for _edit in range(rng.randrange(1, 4)):
            at = rng.randrange(len(doc) + 1)
            action = rng.randrange(3)
            if action == 0:
                doc.insert(at, rng.choice(alphabet))
            elif action == 1 and at < len(doc):
                del doc[at]
            elif at < len(doc):
                doc[at] = rng.choice(alphabet)
        text = "".join(doc)
        assert _same(_ours(text), _theirs(text)), text


@pytest.mark.parametrize("doc", [
    "01", "-", "-01", "1.", ".5", "1e", "1e+", "+1", "1.5e3", "-0", "-0.0", "1E400", "[-]",
    '"\\u12"', '"\\u12g4"', '"\\ud83d\\u0041"', '"\\ud83d\\ude00\\ude00"', '"\\x"',
    '"a\x01"', "[1 2]", '{"a":1,}', '{"a":1 "b":2}', "[", "{", '"', "tru", "nul",
    '{"a":1,"a":2}', "\ufeff[]", "[1]\x00", "1" * 5000, "[" * 3000 + "]" * 3000,
    "Infinity", "-Infinity", "[NaN]",
])
def test_edge_cases_read_as_json_does(doc: str) -> None:
    assert _same(_ours(doc), _theirs(doc))


def test_dumps_keys_as_json_writes_them() -> None:
    keys = {7: "a", 2.5: "b", True: "c", False: "f", None: "d", "s": "e"}
    assert jsonc.write(keys) == json.dumps(keys)
    with pytest.raises(TypeError):
        jsonc.write({(1, 2): "tuple key"})
    assert jsonc.write(("a", 1)) == json.dumps(("a", 1))


@pytest.mark.parametrize("doc", DOCS)
def test_with_json_loaded_loads_and_dumps_answer_alike(doc: str) -> None:
    assert "json" in sys.modules
    assert jsonc.loads(doc) == jsonc.parse(doc) == jsonc.loads(doc.encode())
    assert jsonc.dumps(jsonc.loads(doc)) == jsonc.write(jsonc.parse(doc))
    with pytest.raises(ValueError):
        jsonc.loads("[NaN]")
    with pytest.raises(ValueError):
        jsonc.dumps({"x": float("inf")})


def test_nothing_is_imported() -> None:
    code = ("import sys; before = set(sys.modules); from crid.oci import jsonc\n"
            "jsonc.loads(jsonc.dumps({'a': [1, 2.5, None, 'é\\\\n']}))\n"
            "print(*sorted(set(sys.modules) - before))\n")
    out = subprocess.run([sys.executable, "-IS", "-c", "import sys; sys.path[:0] = "
                          f"{sys.path!r}; exec({code!r})"],
                         capture_output=True, text=True, check=True).stdout
    assert not {"json", "_json", "re", "enum", "typing"} & set(out.split()), out
