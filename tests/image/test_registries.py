import json
import os
import tomllib
from pathlib import Path

import pytest
from crid.image import registries
from crid.image.pull import Platform, select_platform
from crid.image.reference import parse
from crid.image.registry_client import OCI_INDEX, Descriptor, Manifest

from crid.errors import FailedPrecondition, InvalidArgument, NotFound

CONF = """
unqualified-search-registries = ["quay.io", "docker.io"]

[[registry]]
prefix = "docker.io"
location = "docker.io"
[[registry.mirror]]
location = "127.0.0.1:1/dead"
[[registry.mirror]]
location = "mirror.example:5000"
insecure = true

[[registry]]
prefix = "registry.k8s.io/e2e-test-images"
location = "127.0.0.1:5000/k8s"
insecure = true

[[registry]]
prefix = "registry.k8s.io"
location = "127.0.0.1:5000"

[[registry]]
prefix = "evil.example"
blocked = true

[[registry]]
prefix = "*.corp.example"
[[registry.mirror]]
location = "cache.corp.example"
"""


def config() -> registries.RegistriesConfig:
    return registries.parse(tomllib.loads(CONF))


def test_mirrors_in_order_then_the_registry() -> None:
    endpoints = config().endpoints(parse("docker.io/library/busybox:1"))
    assert [(str(e), e.insecure, e.mirror) for e in endpoints] == [
        ("127.0.0.1:1/dead/library/busybox", False, True),
        ("mirror.example:5000/library/busybox", True, True),
        ("docker.io/library/busybox", False, False),
    ]


def test_longest_prefix_wins_and_location_rewrites() -> None:
    endpoints = config().endpoints(parse("registry.k8s.io/e2e-test-images/busybox:1.29-2"))
    assert [(str(e), e.insecure) for e in endpoints] == [("127.0.0.1:5000/k8s/busybox", True)]
    endpoints = config().endpoints(parse("registry.k8s.io/pause:3.9"))
    # On loopback but not marked insecure: the reference did not name loopback.
    assert [(str(e), e.insecure) for e in endpoints] == [("127.0.0.1:5000/pause", False)]


def test_prefix_matches_only_whole_components() -> None:
    assert config().find("registry.k8s.io.evil/x") is None
    assert config().find("docker.io/library/busybox") is not None


def test_wildcard_prefix() -> None:
    endpoints = config().endpoints(parse("git.corp.example/team/app"))
    assert [str(e) for e in endpoints] == [
        "cache.corp.example/git.corp.example/team/app",
        "git.corp.example/team/app",
    ]


def test_blocked_registry_is_refused() -> None:
    with pytest.raises(FailedPrecondition, match="blocked"):
        config().endpoints(parse("evil.example/app"))


def test_unconfigured_registry_is_itself_and_loopback_is_insecure() -> None:
    [endpoint] = config().endpoints(parse("127.0.0.1:5000/app"))
    assert (str(endpoint), endpoint.insecure) == ("127.0.0.1:5000/app", True)
    [endpoint] = config().endpoints(parse("localhost:5000/app"))
    assert endpoint.insecure
    [endpoint] = config().endpoints(parse("example.com/app"))
    assert not endpoint.insecure


def test_short_names_use_search_registries() -> None:
    names = [str(r) for r in config().candidates(parse("busybox"))]
    assert names == ["quay.io/busybox:latest", "docker.io/library/busybox:latest"]
    assert [str(r) for r in registries.RegistriesConfig().candidates(parse("busybox"))] == [
        "docker.io/library/busybox:latest"
    ]
    assert len(config().candidates(parse("quay.io/x"))) == 1


def test_load_missing_file_is_empty(tmp_path: Path) -> None:
    assert registries.load(tmp_path / "none.conf") == registries.RegistriesConfig()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[[registry]]\ninsecure = true\n", "prefix or a location"),
        ("[[registry]]\nprefix = 'a.io'\ninsecure = 'yes'\n", "insecure"),
        ("[[registry]]\nprefix = '*.a.io'\nlocation = 'b.io'\n", "wildcard"),
        ("unqualified-search-registries = 'docker.io'\n", "list"),
        ("[[registry]]\nprefix = 'a.io'\n[[registry.mirror]]\ninsecure = true\n", "location"),
        ("not toml [", "TOML"),
    ],
)
def test_bad_files_name_the_problem(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "registries.conf"
    path.write_text(text)
    with pytest.raises(InvalidArgument, match=words):
        registries.load(path)


def test_platform_selection() -> None:



    def entry(n: str, **platform: str) -> dict[str, object]:
        return {"mediaType": "m", "digest": "sha256:" + n * 64, "size": 1, "platform": platform}

    document = {"manifests": [
        entry("1", os="linux", architecture="arm", variant="v6"),
        entry("2", os="linux", architecture="arm64"),
        entry("3", os="linux", architecture="arm", variant="v7"),
        entry("4", os="windows", architecture="amd64"),
        entry("5", os="linux", architecture="amd64"),
    ]}
    index = Manifest("sha256:" + "f" * 64, OCI_INDEX, json.dumps(document).encode(), document)
    assert select_platform(index, Platform("linux", "amd64")).digest.endswith("5" * 64)
    assert select_platform(index, Platform("linux", "arm", "v7")).digest.endswith("3" * 64)
    # arm64 images rarely say v8: an entry without a variant fits.
    assert select_platform(index, Platform("linux", "arm64", "v8")).digest.endswith("2" * 64)
    with pytest.raises(NotFound, match=r"linux/s390x.*linux/amd64"):
        select_platform(index, Platform("linux", "s390x"))


@pytest.mark.parametrize("digest", ["sha256:../../etc", "md5:" + "a" * 32, "sha256:" + "A" * 64])
def test_descriptors_with_unsafe_digests_are_refused(digest: str) -> None:
    with pytest.raises(InvalidArgument, match="bad digest"):
        Descriptor.parse({"mediaType": "m", "digest": digest, "size": 1}, "manifest")


def test_loaded_reads_the_file_again_only_when_it_changed(tmp_path: Path) -> None:
    path = tmp_path / "registries.conf"
    path.write_text(CONF)
    old = 1_000_000_000
    os.utime(path, (old, old))  # not racy: cached
    loaded = registries.Loaded(path)
    first = loaded.get()
    assert loaded.get() is first
    path.write_text(CONF.replace("mirror.example:5000", "other.example:5000"))
    os.utime(path, (old + 1, old + 1))
    changed = loaded.get()
    assert changed is not first
    assert "other.example:5000" in repr(changed)
    path.unlink()
    assert loaded.get() == registries.RegistriesConfig()


def test_loaded_reads_a_file_changed_just_now_every_time(tmp_path: Path) -> None:
    # Written within one mtime tick, a same-size edit would keep the same stat.
    path = tmp_path / "registries.conf"
    path.write_text(CONF)
    loaded = registries.Loaded(path)
    assert loaded.get() is not loaded.get()
    path.write_text("[[registry]]\nprefix = 1\n")
    with pytest.raises(InvalidArgument):
        loaded.get()
