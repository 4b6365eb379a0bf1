"""Where pulls go: credentials, mirrors, insecure registries (registries.conf)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import grpc
import pytest
from cri_api.v1 import api_pb2

from e2e.fixtures.daemon import CridDaemon, DaemonFactory, free_port
from e2e.fixtures.images import multi_layer_image, push_recipe
from e2e.fixtures.registry import Registry
from e2e.image.fake_registry import FakeRegistry, Route
from e2e.image.test_pull import pull, spec, status


def failure(daemon: CridDaemon, ref: str, **auth: str) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        pull(daemon, ref, **auth)
    return caught.value


def test_basic_auth_with_without_and_wrong_credentials(
    crid_daemon: CridDaemon, auth_registry: Registry
) -> None:
    pushed = push_recipe(auth_registry, "busybox", tag="auth")
    assert auth_registry.username and auth_registry.password
    without = failure(crid_daemon, pushed.reference)
    assert without.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "authentication required" in str(without.details())
    wrong = failure(crid_daemon, pushed.reference, username=auth_registry.username,
                    password="not-the-password")
    assert wrong.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "refused the credentials" in str(wrong.details())
    assert not status(crid_daemon, pushed.reference).HasField("image")
    assert pull(crid_daemon, pushed.reference, username=auth_registry.username,
                password=auth_registry.password) == pushed.image_id
    encoded = base64.b64encode(f"{auth_registry.username}:{auth_registry.password}".encode())
    crid_daemon.image.RemoveImage(api_pb2.RemoveImageRequest(image=spec(pushed.reference)))
    assert pull(crid_daemon, pushed.reference, auth=encoded.decode()) == pushed.image_id


def test_credentials_from_the_auth_file(
    crid_factory: DaemonFactory, auth_registry: Registry, tmp_path: Path
) -> None:
    pushed = push_recipe(auth_registry, "busybox", tag="authfile")
    auth_file = tmp_path / "config.json"
    encoded = base64.b64encode(f"{auth_registry.username}:{auth_registry.password}".encode())
    auth_file.write_text(json.dumps({"auths": {auth_registry.host: {"auth": encoded.decode()}}}))
    daemon = crid_factory(config_toml=f'[crid.image]\nauth_file = "{auth_file}"\n')
    assert pull(daemon, pushed.reference) == pushed.image_id


def test_a_mirror_that_is_down_then_one_that_works(
    crid_factory: DaemonFactory, registry: Registry
) -> None:
    push = push_recipe(registry, "busybox", tag="1.29-2")
    daemon = crid_factory(start=False)
    daemon.registries_conf.write_text(f"""
[[registry]]
prefix = "registry.k8s.io/e2e-test-images"
location = "registry.k8s.io/e2e-test-images"
[[registry.mirror]]
location = "127.0.0.1:{free_port()}/down"
insecure = true
[[registry.mirror]]
location = "{registry.host}"
insecure = true
""")
    daemon.start()
    name = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
    assert pull(daemon, name) == push.image_id
    image = status(daemon, name).image
    assert list(image.repo_tags) == [name]
    assert list(image.repo_digests) == [f"registry.k8s.io/e2e-test-images/busybox@{push.digest}"]
    assert "endpoint failed" in daemon.stderr_text()


def test_insecure_registry_refused_unless_configured(
    crid_factory: DaemonFactory, registry: Registry
) -> None:
    pushed = push_recipe(registry, "busybox", tag="insecure")
    daemon = crid_factory(start=False)
    conf = f"""
[[registry]]
prefix = "registry.example"
location = "{registry.host}"
insecure = {{}}
"""
    daemon.registries_conf.write_text(conf.format("false"))
    daemon.start()
    refused = failure(daemon, "registry.example/busybox:insecure")
    assert refused.code() == grpc.StatusCode.UNAVAILABLE
    assert "insecure = true" in str(refused.details())
    # registries.conf is read at each pull: no restart needed.
    daemon.registries_conf.write_text(conf.format("true"))
    assert pull(daemon, "registry.example/busybox:insecure") == pushed.image_id


def test_blocked_registry(crid_factory: DaemonFactory, registry: Registry) -> None:
    daemon = crid_factory(start=False)
    daemon.registries_conf.write_text(f'[[registry]]\nprefix = "{registry.host}"\nblocked = true\n')
    daemon.start()
    refused = failure(daemon, registry.ref("busybox"))
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "blocked" in str(refused.details())


def test_short_names_use_unqualified_search_registries(
    crid_factory: DaemonFactory, registry: Registry
) -> None:
    pushed = push_recipe(registry, "busybox", tag="short")
    daemon = crid_factory(start=False)
    daemon.registries_conf.write_text(
        f'unqualified-search-registries = ["{registry.host}"]\n')
    daemon.start()
    assert pull(daemon, "busybox:short") == pushed.image_id
    assert status(daemon, "busybox:short").image.id == pushed.image_id


def test_bearer_token_flow(crid_daemon: CridDaemon) -> None:
    with FakeRegistry() as fake:
        fake.bearer = ("robot", "hunter2")
        image = multi_layer_image()
        fake.add_image("private/app", "v1", image)
        ref = f"{fake.host}/private/app:v1"
        refused = failure(crid_daemon, ref, username="robot", password="wrong")
        assert "token service refused" in str(refused.details())
        assert pull(crid_daemon, ref, username="robot", password="hunter2") == (
            image.config_blob.digest)
        token_requests = [p for p, _ in fake.requests if p.startswith("/token")]
        assert "scope=repository%3Aprivate%2Fapp%3Apull" in token_requests[-1]
        # With a registry token, it is used as is.
        crid_daemon.image.RemoveImage(api_pb2.RemoveImageRequest(image=spec(ref)))
        assert pull(crid_daemon, ref, registry_token=fake.token) == image.config_blob.digest
        # An identity token is exchanged for an access token (OAuth2 refresh grant).
        crid_daemon.image.RemoveImage(api_pb2.RemoveImageRequest(image=spec(ref)))
        assert pull(crid_daemon, ref, identity_token=fake.refresh_token) == (
            image.config_blob.digest)
        refused = failure(crid_daemon, ref, identity_token="stale")
        assert "token service refused" in str(refused.details())


def test_redirected_blobs(crid_daemon: CridDaemon) -> None:
    with FakeRegistry() as fake:
        image = multi_layer_image()
        routes = fake.add_image("redirected", "v1", image)
        for digest, route in routes.items():
            fake.routes[f"/storage/{digest}"] = Route(route.body)
            route.redirect_to = f"http://{fake.host}/storage/{digest}"
        assert pull(crid_daemon, f"{fake.host}/redirected:v1") == image.config_blob.digest
        assert all(fake.routes[f"/storage/{d}"].hits == 1 for d in routes)


def test_schema1_and_oversized_manifests_are_refused(crid_daemon: CridDaemon) -> None:
    with FakeRegistry() as fake:
        schema1 = {"schemaVersion": 1, "name": "old", "tag": "v1", "fsLayers": []}
        fake.routes["/v2/old/manifests/v1"] = Route(
            json.dumps(schema1).encode(),
            "application/vnd.docker.distribution.manifest.v1+prettyjws")
        refused = failure(crid_daemon, f"{fake.host}/old:v1")
        assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "schema 1" in str(refused.details())
        huge = b'{"schemaVersion": 2, "layers": [], "pad": "' + b"x" * (5 << 20) + b'"}'
        fake.routes["/v2/huge/manifests/v1"] = Route(
            huge, "application/vnd.oci.image.manifest.v1+json")
        refused = failure(crid_daemon, f"{fake.host}/huge:v1")
        assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "exceeds" in str(refused.details())


def test_pinned_images(crid_factory: DaemonFactory, registry: Registry) -> None:
    pinned = push_recipe(registry, "busybox", tag="pinned")
    other = push_recipe(registry, "multi-layer", tag="unpinned")
    daemon = crid_factory(config_toml=f'[crid.image]\npinned_images = ["{pinned.reference}"]\n')
    pull(daemon, pinned.reference)
    pull(daemon, other.reference)
    assert status(daemon, pinned.reference).image.pinned
    assert not status(daemon, other.reference).image.pinned
