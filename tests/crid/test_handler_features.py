"""Reading a runtime's features document, and probing real and broken runtimes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from crid.config import Handler
from crid.handler_features import HandlerFeatures, from_document, idmap_works, probe_all


@pytest.mark.parametrize(("document", "release", "rro"), [
    ({"mountOptions": ["ro", "rro"]}, "6.18.44-fc-v657", True),
    ({"mountOptions": ["ro", "rro"]}, "5.12.0", True),
    ({"mountOptions": ["ro", "rro"]}, "5.11.22", False),  # no mount_setattr(2)
    ({"mountOptions": ["ro"]}, "6.1.0", False),
    ({}, "6.1.0", False),
    ([], "6.1.0", False),
    ({"mountOptions": ["ro", "rro"]}, "weird", False),
])
def test_rro_needs_the_option_and_the_kernel(document: object, release: str, rro: bool) -> None:
    assert from_document(json.dumps(document).encode(), release) == HandlerFeatures(rro)


def test_garbage_is_no_features() -> None:
    assert from_document(b"\xff not json", "6.1") == HandlerFeatures(False)


def test_probe_runs_each_runtime(tmp_path: Path) -> None:
    script = tmp_path / "runtime"
    script.write_text('#!/bin/sh\n[ "$1" = features ] && echo \'{"mountOptions": ["rro"]}\'\n')
    script.chmod(0o755)
    failing = tmp_path / "failing"
    failing.write_text("#!/bin/sh\nexit 3\n")
    failing.chmod(0o755)
    found = asyncio.run(probe_all([
        Handler("good", str(script)), Handler("fails", str(failing)),
        Handler("missing", str(tmp_path / "nope"))], kernel_release="6.1.0"))
    assert found == {"good": HandlerFeatures(True), "fails": HandlerFeatures(False),
                     "missing": HandlerFeatures(False)}


IDMAP_RUNTIME = {"linux": {"namespaces": ["mount", "user"],
                           "mountExtensions": {"idmap": {"enabled": True}}}}


@pytest.mark.parametrize(("document", "idmap", "userns"), [
    (IDMAP_RUNTIME, True, True),
    (IDMAP_RUNTIME, False, False),  # the kernel or the root dir's filesystem says no
    ({"linux": {"namespaces": ["mount", "user"]}}, True, False),  # runc 1.1: no idmap key
    ({"linux": {"namespaces": ["mount"],
                "mountExtensions": {"idmap": {"enabled": True}}}}, True, False),
    ({"linux": {"namespaces": ["user"], "mountExtensions": {"idmap": {"enabled": "yes"}}}},
     True, False),
    ({"linux": []}, True, False),
])
def test_user_namespaces_need_idmap_in_runtime_and_kernel(document: object, idmap: bool,
                                                          userns: bool) -> None:
    found = from_document(json.dumps(document).encode(), "6.18.0", idmap)
    assert found.user_namespaces is userns


def test_idmap_probe_on_real_filesystems(tmp_path: Path) -> None:
    assert idmap_works(str(tmp_path))  # ext4 on this machine's kernel 6.18
    assert not idmap_works("/proc")  # procfs has no idmapped mounts
    assert not idmap_works(str(tmp_path / "missing"))


def test_crid_runtime_features_offer_user_namespaces() -> None:
    from crid.oci.verbs.features import features

    assert from_document(json.dumps(features()).encode(), "6.18.0", True).user_namespaces
