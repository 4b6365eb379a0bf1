"""User resolution: every form kubelet and images use, both group policies."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cri_api.v1 import api_pb2
from crid.oci.spec.user import ResolvedUser, resolve_user

from crid.errors import InvalidArgument
from tests.oci.spec.fakes import make_rootfs, security_context

Int64 = api_pb2.Int64Value
STRICT = api_pb2.SupplementalGroupsPolicy.Strict


@pytest.fixture
def root(tmp_path: Path) -> str:
    return str(make_rootfs(tmp_path))


@pytest.mark.parametrize(
    ("image_user", "uid", "gid", "groups"),
    [
        ("", 0, 0, (0, 10)),
        ("0", 0, 0, (0, 10)),
        ("root", 0, 0, (0, 10)),
        ("alice", 1000, 1000, (1000, 100, 10, 29)),
        ("1000", 1000, 1000, (1000, 100, 10, 29)),
        ("bob", 1001, 100, (100, 29, 44)),
        ("alice:44", 1000, 44, (44, 100, 10, 29)),
        ("alice:video", 1000, 44, (44, 100, 10, 29)),
        ("1001:wheel", 1001, 10, (10, 29, 44)),
        ("1001:500", 1001, 500, (500, 29, 44)),
        ("4242", 4242, 0, (0,)),  # not in /etc/passwd: gid 0, no name, no groups
        ("4242:4242", 4242, 4242, (4242,)),
    ],
)
def test_image_user_forms(root: str, image_user: str, uid: int, gid: int,
                          groups: tuple[int, ...]) -> None:
    got = resolve_user(security_context(), image_user, root)
    assert (got.uid, got.gid, got.additional_gids) == (uid, gid, groups)


@pytest.mark.parametrize("image_user", ["nobody", "nobody:0", "alice:nogroup", "1000:nogroup"])
def test_unknown_image_names_are_invalid(root: str, image_user: str) -> None:
    with pytest.raises(InvalidArgument, match=r"not found in the image's /etc/(passwd|group)"):
        resolve_user(security_context(), image_user, root)


def test_unknown_username_message(root: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        resolve_user(security_context(run_as_username="foo"), "", root)
    assert e.value.message == "user 'foo' not found in the image's /etc/passwd"


def test_group_without_user_in_image_config(root: str) -> None:
    with pytest.raises(InvalidArgument, match="no user"):
        resolve_user(security_context(), ":44", root)


def test_run_as_user_overrides_image_user(root: str) -> None:
    got = resolve_user(security_context(run_as_user=Int64(value=1001)), "alice", root)
    assert got == ResolvedUser(1001, 100, (100, 29, 44), "bob")


def test_run_as_user_unknown_uid_gets_gid_zero(root: str) -> None:
    got = resolve_user(security_context(run_as_user=Int64(value=5000)), "alice", root)
    assert got == ResolvedUser(5000, 0, (0,), "")


def test_run_as_user_zero_is_root_not_unset(root: str) -> None:
    got = resolve_user(security_context(run_as_user=Int64(value=0)), "alice", root)
    assert (got.uid, got.gid) == (0, 0)


def test_run_as_username_wins_over_run_as_user(root: str) -> None:
    sc = security_context(run_as_username="alice", run_as_user=Int64(value=1001))
    assert resolve_user(sc, "", root).uid == 1000


def test_run_as_group_replaces_primary_gid(root: str) -> None:
    sc = security_context(run_as_user=Int64(value=1000), run_as_group=Int64(value=3000))
    got = resolve_user(sc, "", root)
    assert (got.uid, got.gid, got.additional_gids) == (1000, 3000, (3000, 100, 10, 29))


def test_run_as_group_with_username(root: str) -> None:
    sc = security_context(run_as_username="bob", run_as_group=Int64(value=0))
    assert resolve_user(sc, "", root).gid == 0


def test_run_as_group_without_user_is_refused(root: str) -> None:
    with pytest.raises(InvalidArgument, match="without run_as_user"):
        resolve_user(security_context(run_as_group=Int64(value=3000)), "alice", root)


def test_merge_adds_request_groups_after_image_groups(root: str) -> None:
    sc = security_context(run_as_user=Int64(value=1000), supplemental_groups=[5000, 29, 6000])
    assert resolve_user(sc, "", root).additional_gids == (1000, 100, 10, 29, 5000, 6000)


def test_strict_ignores_image_group_file(root: str) -> None:
    sc = security_context(run_as_user=Int64(value=1000), supplemental_groups=[5000],
                          supplemental_groups_policy=STRICT)
    assert resolve_user(sc, "", root).additional_gids == (1000, 5000)


def test_strict_with_image_user_form(root: str) -> None:
    sc = security_context(supplemental_groups_policy=STRICT)
    got = resolve_user(sc, "alice:video", root)
    assert (got.uid, got.gid, got.additional_gids) == (1000, 44, (44,))


def test_negative_ids_are_invalid(root: str) -> None:
    with pytest.raises(InvalidArgument):
        resolve_user(security_context(run_as_user=Int64(value=-1)), "", root)
    with pytest.raises(InvalidArgument):
        resolve_user(security_context(run_as_user=Int64(value=1), supplemental_groups=[-3]),
                     "", root)


def test_no_account_files(tmp_path: Path) -> None:
    got = resolve_user(security_context(run_as_user=Int64(value=7)), "", str(tmp_path))
    assert got == ResolvedUser(7, 0, (0,), "")
    with pytest.raises(InvalidArgument, match="not found"):
        resolve_user(security_context(), "alice", str(tmp_path))


def test_account_files_symlinked_outside_are_not_read(tmp_path: Path) -> None:
    host = tmp_path / "host"
    make_rootfs(host, passwd="evil:x:0:0::/:/bin/sh\n", group="evilgrp:x:0:evil\n")
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    os.symlink(str(host / "etc/passwd"), root / "etc/passwd")
    os.symlink("../../../host/etc/group", root / "etc/group")
    with pytest.raises(InvalidArgument, match="user 'evil' not found"):
        resolve_user(security_context(), "evil", str(root))
    with pytest.raises(InvalidArgument, match="group 'evilgrp' not found"):
        resolve_user(security_context(), "0:evilgrp", str(root))


def test_to_oci_and_cri(root: str) -> None:
    got = resolve_user(security_context(), "alice", root)
    assert got.to_oci() == {"uid": 1000, "gid": 1000, "additionalGids": [1000, 100, 10, 29]}
    cri = got.to_cri()
    assert (cri.linux.uid, cri.linux.gid, list(cri.linux.supplemental_groups)) == (
        1000, 1000, [1000, 100, 10, 29])
