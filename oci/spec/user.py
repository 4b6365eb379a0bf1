"""Who the container's process runs as: uid, gid and supplementary groups.

Sources, in kubelet's and containerd's order of precedence:

1. ``run_as_username``: a name looked up in the image's ``/etc/passwd``;
2. ``run_as_user``: a uid (its passwd entry, if any, gives the primary gid);
3. else the image config's ``User``: ``uid``, ``name``, ``uid:gid``,
   ``name:gid``, ``name:group``, ``uid:group`` (empty means root).

``run_as_group`` then replaces the primary gid; it is refused without a user
in the request (as containerd does, and critest expects).

Supplementary groups start with the primary gid (as containerd reports them),
then, under the ``Merge`` policy, every group of the image's ``/etc/group``
that lists the user by name, then the request's ``supplemental_groups``.
``Strict`` skips the image's group file.

The files are read from the rootfs through :mod:`crid.oci.spec.rootfs`, so a
symlink in the image can never make us read a file of the host, and a huge
file is an error rather than the daemon's memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from cri_api.v1 import api_pb2
from crid.oci.runtime_spec import User
from crid.oci.spec import rootfs

from crid.errors import InvalidArgument

DEFAULT_FILE_LIMIT = rootfs.DEFAULT_LIMIT


@dataclass(frozen=True)
class ResolvedUser:
    """The effective ids; also what ``ContainerStatus.user`` reports."""

    uid: int
    gid: int
    additional_gids: tuple[int, ...]
    username: str = ""

    def to_oci(self) -> User:
        return {"uid": self.uid, "gid": self.gid, "additionalGids": list(self.additional_gids)}

    def to_cri(self) -> api_pb2.ContainerUser:
        return api_pb2.ContainerUser(
            linux=api_pb2.LinuxContainerUser(
                uid=self.uid, gid=self.gid, supplemental_groups=list(self.additional_gids)
            )
        )


@dataclass(frozen=True)
class _Passwd:
    name: str
    uid: int
    gid: int


@dataclass(frozen=True)
class _Group:
    name: str
    gid: int
    members: tuple[str, ...]


def _id(text: str) -> int | None:
    """A numeric id, or None when ``text`` is a name."""
    # ASCII digits only: "²".isdigit() is true but int() refuses it, and int()
    # refuses more than 4300 digits. No id has more than 10.
    if text.isascii() and text.isdigit() and len(text) <= 10:
        value = int(text)
        if value < 2**32 - 1:
            return value
    return None


def _records(text: str | None, min_fields: int) -> Iterator[list[str]]:
    """The ``:``-separated fields of each line of an account file that is not a
    comment and has at least ``min_fields``."""
    for line in (text or "").splitlines():
        fields = line.split(":")
        if len(fields) >= min_fields and not line.startswith("#"):
            yield fields


def _parse_passwd(text: str | None) -> list[_Passwd]:
    entries = []
    for fields in _records(text, 4):
        uid, gid = _id(fields[2]), _id(fields[3])
        if uid is None or gid is None:
            continue
        entries.append(_Passwd(fields[0], uid, gid))
    return entries


def _parse_group(text: str | None) -> list[_Group]:
    entries = []
    for fields in _records(text, 3):
        gid = _id(fields[2])
        if gid is None:
            continue
        members = tuple(m for m in (fields[3] if len(fields) > 3 else "").split(",") if m)
        entries.append(_Group(fields[0], gid, members))
    return entries


class _ImageAccounts:
    """The image's passwd and group files, read lazily once."""

    def __init__(self, rootfs_path: str, limit: int) -> None:
        self._root = rootfs_path
        self._limit = limit
        self._passwd: list[_Passwd] | None = None
        self._group: list[_Group] | None = None

    @property
    def passwd(self) -> list[_Passwd]:
        if self._passwd is None:
            self._passwd = _parse_passwd(rootfs.read_text(self._root, "/etc/passwd", self._limit))
        return self._passwd

    @property
    def group(self) -> list[_Group]:
        if self._group is None:
            self._group = _parse_group(rootfs.read_text(self._root, "/etc/group", self._limit))
        return self._group

    def user_by_name(self, name: str) -> _Passwd:
        for entry in self.passwd:
            if entry.name == name:
                return entry
        raise InvalidArgument(f"user {name!r} not found in the image's /etc/passwd")

    def user_by_uid(self, uid: int) -> _Passwd | None:
        return next((e for e in self.passwd if e.uid == uid), None)

    def gid_of(self, group: str) -> int:
        numeric = _id(group)
        if numeric is not None:
            return numeric
        for entry in self.group:
            if entry.name == group:
                return entry.gid
        raise InvalidArgument(f"group {group!r} not found in the image's /etc/group")

    def groups_listing(self, username: str) -> list[int]:
        return [g.gid for g in self.group if username in g.members]


def _from_image_user(spec: str, accounts: _ImageAccounts) -> tuple[int, int, str]:
    """(uid, gid, username) for the image config's ``User`` string."""
    user, _, group = spec.partition(":")
    if not user:
        if group:
            raise InvalidArgument(f"image user {spec!r} names a group but no user")
        user = "0"
    uid = _id(user)
    if uid is None:
        entry = accounts.user_by_name(user)
        uid, gid, name = entry.uid, entry.gid, entry.name
    else:
        found = accounts.user_by_uid(uid)
        gid, name = (found.gid, found.name) if found else (0, "")
    if group:
        gid = accounts.gid_of(group)
    return uid, gid, name


def resolve_user(
    security: api_pb2.LinuxContainerSecurityContext, image_user: str, rootfs_path: str,
    file_limit: int = DEFAULT_FILE_LIMIT,
) -> ResolvedUser:
    """The process' ids for this request, image config and rootfs (whose
    passwd and group files are read up to ``file_limit`` bytes each)."""
    accounts = _ImageAccounts(rootfs_path, file_limit)
    has_group = security.HasField("run_as_group")
    if security.run_as_username:
        entry = accounts.user_by_name(security.run_as_username)
        uid, gid, name = entry.uid, entry.gid, entry.name
    elif security.HasField("run_as_user"):
        uid = security.run_as_user.value
        if uid < 0:
            raise InvalidArgument(f"run_as_user {uid} is negative")
        found = accounts.user_by_uid(uid)
        gid, name = (found.gid, found.name) if found else (0, "")
    elif has_group:
        raise InvalidArgument(
            f"run_as_group {security.run_as_group.value} is set without run_as_user "
            "or run_as_username"
        )
    else:
        uid, gid, name = _from_image_user(image_user, accounts)
    if has_group:
        if security.run_as_group.value < 0:
            raise InvalidArgument(f"run_as_group {security.run_as_group.value} is negative")
        gid = security.run_as_group.value

    for extra in security.supplemental_groups:
        if extra < 0:
            raise InvalidArgument(f"supplemental group {extra} is negative")
    groups = [gid]
    if security.supplemental_groups_policy == api_pb2.SupplementalGroupsPolicy.Merge and name:
        groups += accounts.groups_listing(name)
    groups += list(security.supplemental_groups)
    return ResolvedUser(uid, gid, tuple(dict.fromkeys(groups)), name)
