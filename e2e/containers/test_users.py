"""Who a container runs as: every user form of the request and the image,
supplemental groups under Merge and Strict, and what ContainerStatus reports."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from cri_api.v1 import api_pb2

from e2e.containers.conftest import Env, Pod
from e2e.containers.helpers import pull, run, sh, status
from e2e.fixtures.images import Image, busybox_image, user_image
from e2e.fixtures.layers import GROUP, File, busybox_layer, make_layer
from e2e.fixtures.registry import Registry

I64 = api_pb2.Int64Value

# www-data (33) is listed in two extra groups of this image's /etc/group.
GROUPS_WITH_MEMBERS = GROUP + "video:x:2001:www-data\nstaff:x:2002:root,www-data\n"

def ids_inside(env: Env, cid: str) -> tuple[int, int, set[int]]:
    """The kernel's view of the container's process: real uid, gid, groups."""
    fields = dict(line.split(":", 1) for line in
                  sh(env.daemon, cid, "cat /proc/self/status").splitlines() if ":" in line)
    return (int(fields["Uid"].split()[0]), int(fields["Gid"].split()[0]),
            {int(g) for g in fields["Groups"].split()})

def reported(env: Env, cid: str) -> tuple[int, int, set[int]]:
    user = status(env.daemon, cid).user.linux
    return user.uid, user.gid, set(user.supplemental_groups)

@pytest.mark.parametrize(("image_user", "expected"), [
    ("1002", (1002, 0, {0})),
    ("www-data", (33, 33, {33})),
    ("1003:1004", (1003, 1004, {1004})),
    ("www-data:65534", (33, 65534, {65534})),
    ("www-data:nogroup", (33, 65534, {65534})),
    ("1002:www-data", (1002, 33, {33})),
    ("", (0, 0, {0})),
])
def test_image_user_forms(env: Env, pod: Pod, registry: Registry, image_user: str,
                          expected: tuple[int, int, set[int]]) -> None:
    image = pull(env.daemon, registry, user_image(image_user))
    cid = run(env.daemon, pod.id, pod.config, image)
    assert ids_inside(env, cid) == expected
    assert reported(env, cid) == expected

@pytest.mark.parametrize(("context", "expected"), [
    ({"run_as_user": I64(value=1005)}, (1005, 0, {0})),
    ({"run_as_user": I64(value=33)}, (33, 33, {33})),
    ({"run_as_user": I64(value=1005), "run_as_group": I64(value=1006)},
     (1005, 1006, {1006})),
    ({"run_as_username": "www-data"}, (33, 33, {33})),
    ({"run_as_username": "www-data", "run_as_group": I64(value=1007)},
     (33, 1007, {1007})),
])
def test_request_user_forms_override_the_image(
    env: Env, pod: Pod, registry: Registry, context: dict[str, Any],
    expected: tuple[int, int, set[int]],
) -> None:
    image = pull(env.daemon, registry, user_image("1003:1004"))
    cid = run(env.daemon, pod.id, pod.config, image, linux=api_pb2.LinuxContainerConfig(
        security_context=api_pb2.LinuxContainerSecurityContext(**context)))
    assert ids_inside(env, cid) == expected
    assert reported(env, cid) == expected

@pytest.mark.parametrize(("policy", "expected_groups"), [
    (api_pb2.SupplementalGroupsPolicy.Merge, {33, 2001, 2002, 3000}),
    (api_pb2.SupplementalGroupsPolicy.Strict, {33, 3000}),
])
def test_supplemental_groups_policies(
    env: Env, pod: Pod, registry: Registry, policy: api_pb2.SupplementalGroupsPolicy.ValueType,
    expected_groups: set[int],
) -> None:
    image = pull(env.daemon, registry, Image((
        busybox_layer(), make_layer([File("/etc/group", GROUPS_WITH_MEMBERS.encode())]))))
    cid = run(env.daemon, pod.id, pod.config, image, linux=api_pb2.LinuxContainerConfig(
        security_context=api_pb2.LinuxContainerSecurityContext(
            run_as_username="www-data", supplemental_groups=[3000],
            supplemental_groups_policy=policy)))
    assert ids_inside(env, cid) == (33, 33, expected_groups)
    assert reported(env, cid) == (33, 33, expected_groups)

def test_an_unknown_user_name_is_refused(env: Env, pod: Pod, registry: Registry) -> None:

    image = pull(env.daemon, registry, busybox_image())
    with pytest.raises(grpc.RpcError) as raised:
        run(env.daemon, pod.id, pod.config, image, linux=api_pb2.LinuxContainerConfig(
            security_context=api_pb2.LinuxContainerSecurityContext(run_as_username="nosuch")))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "nosuch" in (raised.value.details() or "")
