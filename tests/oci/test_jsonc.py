"""crid.oci.jsonc parses and writes what ``json`` does, and fails the same way."""

from __future__ import annotations

import json
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
    assert jsonc.loads(doc) == json.loads(doc)
    assert jsonc.loads(doc.encode()) == json.loads(doc)
    assert jsonc.dumps(json.loads(doc)) == json.dumps(json.loads(doc))


@pytest.mark.parametrize("bad", ["", "{ not json", '{"a": 1} extra', "[1,]", "'x'", "NaN",
                                 '{"a" 1}'])
def test_bad_documents_raise_value_error(bad: str) -> None:
    with pytest.raises(ValueError):
        jsonc.loads(bad)


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
        jsonc.dumps({"x": float("nan")})
    with pytest.raises(TypeError):
        jsonc.dumps({"x": object()})
