"""Fuzz target: an image's /etc/passwd and /etc/group, and its config's User.

The input is split at NUL bytes into the image's ``/etc/passwd``,
``/etc/group``, its config's ``User`` and a request's ``run_as_username``;
the files go into a rootfs and ``oci.spec.user.resolve_user`` resolves the
container's uid, gid and groups from them, as CreateContainer does (once
for the image's user, once for the request's name, with the Merge policy).

Allowed: crid's typed errors (a user or group the image lacks is an
InvalidArgument). Anything else escaping is a bug: an image's files would
make CreateContainer fail as INTERNAL.
"""

from __future__ import annotations

from cri_api.v1 import api_pb2
from crid.oci.spec.user import resolve_user

from tests.fuzz.harness import allowing
from tests.fuzz.scratch import directory

MERGE = api_pb2.SupplementalGroupsPolicy.Merge


def one_input(data: bytes) -> None:
    passwd, group, user, username = (data.split(b"\0", 3) + [b""] * 4)[:4]
    root = directory() / "passwd-rootfs"
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc/passwd").write_bytes(passwd)
    (root / "etc/group").write_bytes(group)
    with allowing():
        resolve_user(api_pb2.LinuxContainerSecurityContext(supplemental_groups_policy=MERGE),
                     user.decode(errors="replace"), str(root))
    with allowing():
        resolve_user(api_pb2.LinuxContainerSecurityContext(
            run_as_username=username.decode(errors="replace"), supplemental_groups_policy=MERGE),
            "", str(root))
