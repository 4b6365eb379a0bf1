import pytest
from crid.image import reference

from crid.errors import InvalidArgument


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        ("library/busybox", "docker.io/library/busybox:latest"),
        ("someone/app:v1", "docker.io/someone/app:v1"),
        ("docker.io/busybox", "docker.io/library/busybox:latest"),
        ("index.docker.io/busybox", "docker.io/library/busybox:latest"),
        ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
        ("localhost/app", "localhost/app:latest"),
        ("127.0.0.1:5000/ns/sub/app:tag", "127.0.0.1:5000/ns/sub/app:tag"),
        ("[::1]:5000/app", "[::1]:5000/app:latest"),
        ("quay.io/a/b@sha256:" + "a" * 64, "quay.io/a/b@sha256:" + "a" * 64),
        ("host:5000/a:t@sha256:" + "b" * 64, "host:5000/a:t@sha256:" + "b" * 64),
        ("my_repo/x__y.z-w", "docker.io/my_repo/x__y.z-w:latest"),
    ],
)
def test_normalises(text: str, expected: str) -> None:
    assert str(reference.parse(text)) == expected


def test_parts_of_a_full_reference() -> None:
    ref = reference.parse("host:5000/ns/app:v2@sha256:" + "c" * 64)
    assert (ref.domain, ref.path, ref.tag) == ("host:5000", "ns/app", "v2")
    assert ref.digest == "sha256:" + "c" * 64
    assert ref.version == ref.digest
    assert ref.tagged == "host:5000/ns/app:v2"
    assert ref.qualified


def test_short_names_are_marked_unqualified() -> None:
    assert not reference.parse("busybox").qualified
    assert not reference.parse("someone/app").qualified
    assert reference.parse("docker.io/someone/app").qualified


def test_with_domain_rewrites_short_names() -> None:
    ref = reference.parse("busybox")
    assert str(ref.with_domain("quay.io")) == "quay.io/busybox:latest"
    assert str(ref.with_domain("docker.io")) == "docker.io/library/busybox:latest"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty"),
        (" busybox", "whitespace"),
        ("Busybox", "component"),
        ("busy box", "component"),
        ("app:-bad", "tag"),
        ("app:" + "t" * 129, "tag"),
        ("app@sha256:abc", "digest"),
        ("app@md5:" + "a" * 32, "digest"),
        ("host:5000/", "no repository"),
        ("a//b", "component"),
        ("ho_st:5000/app", "registry"),
        ("x/" + "a" * 260, "longer"),
    ],
)
def test_rejects_malformed(text: str, words: str) -> None:
    with pytest.raises(InvalidArgument, match=words):
        reference.parse(text)


def test_image_ids() -> None:
    assert reference.image_id("a" * 64) == "sha256:" + "a" * 64
    assert reference.image_id("sha256:" + "b" * 64) == "sha256:" + "b" * 64
    assert reference.image_id("busybox") is None
    assert reference.image_id("a" * 63) is None
