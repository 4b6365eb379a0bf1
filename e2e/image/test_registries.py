"""Where pulls go: credentials, mirrors, insecure registries (registries.conf)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import grpc
import pytest
from cri_api.v1 import api_pb2

from e2e.fixtures.daemon import CridDaemon, DaemonFactory, free_port
from e2e.fixtures.images import push_recipe
from e2e.fixtures.registry import Registry
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
