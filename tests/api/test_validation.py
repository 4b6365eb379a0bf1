from __future__ import annotations

import pytest
from cri_api.v1 import api_pb2
from crid.api.validation import field, require

from crid.errors import InvalidArgument


def test_require_names_the_missing_field() -> None:
    request = api_pb2.RunPodSandboxRequest()
    with pytest.raises(InvalidArgument, match=r"^config is required$"):
        require(request, "config")
    request.config.metadata.name = "x"
    require(request, "config", "config.metadata.name")
    with pytest.raises(InvalidArgument, match=r"config\.metadata\.uid is required"):
        require(request, "config.metadata.name", "config.metadata.uid")


def test_field_stops_at_unset_messages() -> None:
    request = api_pb2.RunPodSandboxRequest()
    assert field(request, "config.metadata.name") is None
    request.config.metadata.attempt = 2
    assert field(request, "config.metadata.attempt") == 2
