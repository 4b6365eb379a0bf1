"""The checks on a pod's user namespace options."""

from __future__ import annotations

import pytest
from cri_api.v1 import api_pb2

from crid.errors import InvalidArgument
from crid.sandbox.userns import IdMapping, pod_mapping

M = api_pb2.NamespaceMode


def _options(mode: int = M.POD, uids: list[tuple[int, int, int]] | None = None,
             gids: list[tuple[int, int, int]] | None = None, **kinds: int
             ) -> api_pb2.NamespaceOption:
    uids = [(0, 200000, 65536)] if uids is None else uids
    gids = uids if gids is None else gids
    return api_pb2.NamespaceOption(**kinds, userns_options=api_pb2.UserNamespace(  # type: ignore[arg-type]
        mode=mode,  # type: ignore[arg-type]
        uids=[api_pb2.IDMapping(container_id=c, host_id=h, length=n) for c, h, n in uids],
        gids=[api_pb2.IDMapping(container_id=c, host_id=h, length=n) for c, h, n in gids]))


def test_node_and_unset_are_the_hosts() -> None:
    assert pod_mapping(api_pb2.NamespaceOption()) is None
    assert pod_mapping(_options(M.NODE, [])) is None


def test_pod_mapping() -> None:
    assert pod_mapping(_options()) == IdMapping(0, 200000, 65536)
    assert pod_mapping(_options(uids=[(0, 1000, 100000)])) == IdMapping(0, 1000, 100000)
    assert IdMapping(0, 200000, 65536).proc_line() == "0 200000 65536\n"


@pytest.mark.parametrize("mode", [M.CONTAINER, M.TARGET])
def test_other_modes_refused_by_name(mode: int) -> None:
    with pytest.raises(InvalidArgument, match=M.Name(mode)):  # type: ignore[arg-type]
        pod_mapping(_options(mode, []))


@pytest.mark.parametrize(("uids", "gids", "why"), [
    ([(0, 1000, 100000), (0, 2000, 100000)], None, "exactly one uid"),
    ([], None, "exactly one uid"),
    ([(1, 1000, 100000)], None, "container id 0"),
    ([(0, 0, 65536)], None, "host's root"),
    ([(0, 200000, 1000)], None, "shorter"),
    ([(0, 2**32 - 65536, 65536)], None, "last host id"),
    ([(0, 200000, 65536)], [(0, 300000, 65536)], "same range"),
])
def test_bad_mappings_refused(uids: list[tuple[int, int, int]],
                              gids: list[tuple[int, int, int]] | None, why: str) -> None:
    with pytest.raises(InvalidArgument, match=why):
        pod_mapping(_options(uids=uids, gids=gids))


def test_host_namespaces_refused_with_a_userns() -> None:
    with pytest.raises(InvalidArgument, match="node's network"):
        pod_mapping(_options(network=M.NODE))
