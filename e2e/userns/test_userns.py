"""Pods in a user namespace of their own: ids inside and on the host."""

from __future__ import annotations

from e2e.containers.conftest import Env
from e2e.containers.helpers import run, sh, verbose_pid
from e2e.userns.conftest import HOST_ID, LENGTH, UsernsPodMaker


def _host_ids(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return int(fields["Uid"].split()[0]), int(fields["Gid"].split()[0])


def test_root_inside_is_the_pods_range_outside(env: Env, make_userns_pod: UsernsPodMaker
                                               ) -> None:
    pod = make_userns_pod()
    cid = run(env.daemon, pod.id, pod.config, env.image)
    assert sh(env.daemon, cid, "id -u; id -g").split() == ["0", "0"]
    assert sh(env.daemon, cid, "cat /proc/self/uid_map").split() == ["0", str(HOST_ID),
                                                                     str(LENGTH)]
    assert sh(env.daemon, cid, "cat /proc/self/gid_map").split() == ["0", str(HOST_ID),
                                                                     str(LENGTH)]
    assert _host_ids(verbose_pid(env.daemon, cid)) == (HOST_ID, HOST_ID)
