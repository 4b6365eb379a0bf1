import base64
import json
from pathlib import Path

import pytest
from crid.image import auth

from crid.errors import InvalidArgument


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_cri_auth_field_is_decoded() -> None:
    creds = auth.from_cri(auth=b64("user:pa:ss"))
    assert creds == auth.Credentials("user", "pa:ss")
    assert auth.from_cri() is None
    assert auth.from_cri(registry_token="tok") == auth.Credentials(registry_token="tok")


def test_server_address_names_one_registry() -> None:
    assert auth.canonical_host("https://index.docker.io/v1/") == "docker.io"
    assert auth.canonical_host("registry-1.docker.io") == "docker.io"
    assert auth.canonical_host("http://R.example:5000/v2/") == "r.example:5000"
    creds = auth.from_cri("u", "p", server_address="https://r.example:5000")
    assert creds is not None and creds.server == "r.example:5000"
    assert creds.applies_to("r.example:5000", "r.example:5000", mirror=False)
    # A registries.conf location standing in for the named registry gets them too.
    assert creds.applies_to("r.example:5000", "127.0.0.1:9", mirror=False)
    assert not creds.applies_to("other.example", "other.example", mirror=False)
    assert not creds.applies_to("r.example:5000", "r.example:5000", mirror=True)


def test_unscoped_request_credentials_go_to_the_images_registry_only() -> None:
    creds = auth.from_cri("u", "p")
    assert creds is not None
    assert creds.applies_to("docker.io", "registry-1.docker.io", mirror=False)
    assert creds.applies_to("quay.io", "quay.io", mirror=False)
    assert not creds.applies_to("quay.io", "mirror.example", mirror=True)


def test_cri_auth_field_must_be_base64_pair() -> None:
    with pytest.raises(InvalidArgument, match="base64"):
        auth.from_cri(auth="%%%")
    with pytest.raises(InvalidArgument, match="user:password"):
        auth.from_cri(auth=b64("nocolon"))


def test_auth_file_lookup(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": {
        "127.0.0.1:5000": {"auth": b64("a:b")},
        "https://index.docker.io/v1/": {"username": "hub", "password": "pw"},
        "https://quay.io": {"identitytoken": "refresh"},
    }}))
    assert auth.from_auth_file(path, "127.0.0.1:5000") == auth.Credentials("a", "b")
    assert auth.from_auth_file(path, "docker.io") == auth.Credentials("hub", "pw")
    assert auth.from_auth_file(path, "quay.io") == auth.Credentials(identity_token="refresh")
    assert auth.from_auth_file(path, "other.io") is None
    assert auth.from_auth_file(tmp_path / "missing.json", "x") is None


def test_challenge_parsing() -> None:
    scheme, params = auth.parse_challenge(
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:a/b:pull"'
    )
    assert scheme == "bearer"
    assert params == {
        "realm": "https://auth.example/token",
        "service": "registry.example",
        "scope": "repository:a/b:pull",
    }
    assert auth.parse_challenge('Basic realm="crid-e2e"') == ("basic", {"realm": "crid-e2e"})


def test_basic_header() -> None:
    assert auth.basic_header(auth.Credentials("u", "p")) == "Basic " + b64("u:p")
