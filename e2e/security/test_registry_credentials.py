"""Registry credentials go only where they belong (issue 15, item 5).

A pull secret given in a CRI ``AuthConfig`` is for one registry: the one
``server_address`` names, or the image's own registry when it is empty. A
mirror in front of that registry is another party (another company's cache,
or a host an attacker put in registries.conf' reach); it gets only the
credentials of its own entry in the auth file. A registry that redirects a
blob to another host (its storage, or an attacker's) never sees the token
follow. Every server here is real and records the headers it receives.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from e2e.fixtures.daemon import CridDaemon, DaemonFactory
from e2e.fixtures.images import multi_layer_image, push_recipe
from e2e.fixtures.registry import Registry
from e2e.image.fake_registry import FakeRegistry, Route
from e2e.image.test_pull import pull, status

IMAGE = "registry.example/busybox:creds"


@pytest.fixture
def mirror() -> Iterator[FakeRegistry]:
    """A mirror that serves the image too, behind a Bearer challenge of its own,
    so credentials sent to it would be both seen and used."""
    with FakeRegistry() as fake:
        fake.bearer = ("mirror-robot", "mirror-password")
        yield fake


def authorizations(fake: FakeRegistry) -> list[str]:
    return [h["Authorization"] for _, h in fake.requests if "Authorization" in h]


def mirrored_daemon(crid_factory: DaemonFactory, registry: Registry, mirror: FakeRegistry,
                    config_toml: str = "") -> CridDaemon:
    daemon = crid_factory(start=False, config_toml=config_toml)
    daemon.registries_conf.write_text(f"""
[[registry]]
prefix = "registry.example"
location = "{registry.host}"
insecure = true
[[registry.mirror]]
location = "{mirror.host}"
insecure = true
""")
    return daemon.start()


def test_request_credentials_never_reach_a_mirror(
    crid_factory: DaemonFactory, auth_registry: Registry, mirror: FakeRegistry
) -> None:
    pushed = push_recipe(auth_registry, "busybox", tag="creds")
    mirror.add_image("busybox", "creds", multi_layer_image())
    daemon = mirrored_daemon(crid_factory, auth_registry, mirror)
    assert auth_registry.username and auth_registry.password
    image_id = pull(daemon, IMAGE, username=auth_registry.username,
                    password=auth_registry.password)
    # The mirror was asked first and challenged us; it got no credentials, so
    # the pull fell through to the registry, which took them.
    assert any(path.startswith("/v2/busybox/manifests/") for path, _ in mirror.requests)
    assert any(path.startswith("/token") for path, _ in mirror.requests)
    assert authorizations(mirror) == []
    assert image_id == pushed.image_id
    assert "endpoint failed" in daemon.stderr_text()


def test_a_mirror_gets_its_own_auth_file_entry_only(
    crid_factory: DaemonFactory, auth_registry: Registry, mirror: FakeRegistry, tmp_path: Path
) -> None:
    image = multi_layer_image()
    mirror.add_image("busybox", "creds", image)
    auth_file = tmp_path / "config.json"
    own = base64.b64encode(b"mirror-robot:mirror-password").decode()
    auth_file.write_text(json.dumps({"auths": {mirror.host: {"auth": own}}}))
    daemon = mirrored_daemon(crid_factory, auth_registry, mirror,
                             f'[crid.image]\nauth_file = "{auth_file}"\n')
    assert auth_registry.username and auth_registry.password
    assert pull(daemon, IMAGE, username=auth_registry.username,
                password=auth_registry.password) == image.config_blob.digest
    seen = authorizations(mirror)
    assert f"Basic {own}" in seen and f"Bearer {mirror.token}" in seen
    request_secret = base64.b64encode(
        f"{auth_registry.username}:{auth_registry.password}".encode()).decode()
    assert all(request_secret not in value for value in seen)


def test_server_address_scopes_the_request_credentials(
    crid_daemon: CridDaemon, auth_registry: Registry
) -> None:
    pushed = push_recipe(auth_registry, "busybox", tag="scoped")
    assert auth_registry.username and auth_registry.password
    secret = {"username": auth_registry.username, "password": auth_registry.password}
    with pytest.raises(grpc.RpcError) as refused:
        pull(crid_daemon, pushed.reference, server_address="https://other.example", **secret)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "authentication required" in str(refused.value.details())
    assert not status(crid_daemon, pushed.reference).HasField("image")
    assert pull(crid_daemon, pushed.reference, server_address=f"http://{auth_registry.host}/v2/",
                **secret) == pushed.image_id


def test_a_redirect_to_another_host_does_not_carry_the_token(crid_daemon: CridDaemon) -> None:
    with FakeRegistry() as registry, FakeRegistry() as storage:
        registry.bearer = ("robot", "hunter2")
        image = multi_layer_image()
        routes = registry.add_image("private/app", "v1", image)
        for digest, route in routes.items():
            storage.routes[f"/storage/{digest}"] = Route(route.body)
            route.redirect_to = f"http://{storage.host}/storage/{digest}"
        ref = f"{registry.host}/private/app:v1"
        assert pull(crid_daemon, ref, username="robot", password="hunter2") == (
            image.config_blob.digest)
        # The registry took the token on every blob request it redirected...
        blob_requests = [h for p, h in registry.requests if "/blobs/" in p]
        assert len(blob_requests) >= len(routes)
        assert all(h.get("Authorization") == f"Bearer {registry.token}"
                   for h in blob_requests)
        # ...and the other host served every blob without ever seeing it.
        assert all(storage.routes[f"/storage/{d}"].hits == 1 for d in routes)
        assert authorizations(storage) == []
