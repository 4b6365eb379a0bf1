"""Fuzz target: image manifest, index and config JSON, as a registry sends them.

One input is one document, read in every role a registry's bytes play in a
pull: a manifest or index (``registry_client.parse_manifest``), then for an
index the platform choice (``pull.select_platform``), for a manifest its
config and layer descriptors (``pull.image_parts``); and as an image config:
the diff IDs against those layers (``pull.layer_diff_ids``, ``chain_ids``),
the user (``records.user_of``) and what a container takes from it
(``ImageConfig.from_json``, the stop signal).

Allowed: crid's typed errors (InvalidArgument, FailedPrecondition,
NotFound, ...). Anything else escaping is a bug: the daemon would answer
INTERNAL, or worse, for bytes any registry can serve.
"""

from __future__ import annotations

import hashlib

from cri_api.v1 import api_pb2
from crid.image.pull import Platform, image_parts, layer_diff_ids, select_platform
from crid.image.records import user_of
from crid.image.registry_client import (
    INDEX_TYPES,
    Descriptor,
    json_object,
    parse_manifest,
)
from crid.image.snapshots import chain_ids
from crid.oci.spec import ImageConfig
from crid.oci.spec.builder import stop_signal

from tests.fuzz.harness import allowing

PLATFORMS = (Platform(), Platform("linux", "arm64", "v8"), Platform("linux", "arm", "v7"))


def one_input(data: bytes) -> None:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    layers: list[Descriptor] = []
    with allowing():
        manifest = parse_manifest(data, digest, "", "registry.test", "latest")
        if manifest.media_type in INDEX_TYPES:
            for platform in PLATFORMS:
                with allowing():
                    select_platform(manifest, platform)
        else:
            _, layers = image_parts(manifest, "fuzz")
    with allowing():
        config = json_object(data, "fuzz config")
        with allowing():
            chain_ids(layer_diff_ids(config, layers, "fuzz"))
        user_of(config)
        image = ImageConfig.from_json(config)
        stop_signal(api_pb2.ContainerConfig(), image)

