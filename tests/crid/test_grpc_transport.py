"""The transport choice: the fast path only on a tested grpcio with its core
names in place, grpc.aio otherwise, and never when switched off."""

from __future__ import annotations

import grpc
import pytest

from crid import grpc_transport
from crid.grpc_aio_server import AioServer


def test_the_installed_grpcio_was_tested_and_has_what_the_fast_path_uses() -> None:
    # The lock file pins a grpcio the fast path was tested with; if this fails
    # after `make lock`, run the suite on the new release and add it to TESTED_GRPCIO.
    choice = grpc_transport.choose("auto")
    assert choice.fast, choice.reason
    assert grpc_transport.missing_core_names() == []


def test_off_means_grpc_aio() -> None:
    choice = grpc_transport.choose("off")
    assert not choice.fast and "off" in choice.reason
    assert choice.name == "grpc.aio"
    assert isinstance(grpc_transport.build(choice, {}, ()), AioServer)


@pytest.mark.parametrize("version", ["1.60.0", "1.86.0", "2.0.1", "1.8.5"])
def test_an_untested_grpcio_gets_grpc_aio(version: str) -> None:
    choice = grpc_transport.choose("auto", grpcio_version=version)
    assert not choice.fast
    assert f"grpcio {version} is not a release the fast path was tested with" in choice.reason


def test_a_tested_minor_with_any_patch_takes_the_fast_path() -> None:
    minor = next(iter(grpc_transport.TESTED_GRPCIO))
    assert grpc_transport.choose("auto", grpcio_version=f"{minor}.99").fast


def test_a_core_without_a_class_the_fast_path_uses_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from grpc._cython import cygrpc  # type: ignore[attr-defined]

    monkeypatch.delattr(cygrpc, "SendStatusFromServerOperation")
    choice = grpc_transport.choose("auto", grpcio_version=grpc.__version__)
    assert not choice.fast
    assert "cygrpc.SendStatusFromServerOperation" in choice.reason


def test_a_core_without_a_method_the_fast_path_calls_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # cygrpc's classes are immutable C types: ask for a method they lack instead.
    monkeypatch.setitem(grpc_transport._CYGRPC_NAMES, "Server", ("start", "serve_forever"))
    choice = grpc_transport.choose("auto", grpcio_version=grpc.__version__)
    assert not choice.fast
    assert "cygrpc.Server.serve_forever" in choice.reason
