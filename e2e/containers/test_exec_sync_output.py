"""ExecSync output is capped (CVE-2022-31030 / CVE-2022-1708 class): a command
printing a gigabyte cannot grow the daemon or stall other clients.

Before the cap, ``yes | head -c 1G`` through ExecSync grew crid by 4 GiB of
RSS, held another client's ListPodSandbox for 8 s, and then failed with
RESOURCE_EXHAUSTED. Now the streams keep their first bytes up to what fits
the 16 MiB message kubelet accepts, the rest is read and dropped (the command
runs to its end), and stderr says what was cut. The test's client accepts
16 MiB answers, as kubelet's does.
"""

from __future__ import annotations

import re

import grpc
from cri_api.v1 import api_pb2, api_pb2_grpc

from crid.containers.exec_output import DEFAULT_LIMIT, KUBELET_MAX_MESSAGE
from e2e.containers.conftest import Env, Pod
from e2e.containers.helpers import exec_sync, run
from e2e.fixtures.pressure import MAX_RSS_GROWTH, Pressure

GIB = 1024 ** 3
NOTICE = re.compile(rb"\ncrid: ExecSync (stdout|stderr) truncated: output is capped at "
                    rb"(\d+) bytes, kept (\d+), dropped (\d+)\n")


def test_a_gigabyte_of_output_is_capped_and_the_daemon_stays_small(env: Env, pod: Pod) -> None:
    cid = run(env.daemon, pod.id, pod.config, env.image)
    assert env.daemon.process is not None
    with Pressure(env.daemon.process.pid, env.daemon.socket) as pressure, \
            grpc.insecure_channel(f"unix://{env.daemon.socket}", options=[
                ("grpc.max_receive_message_length", KUBELET_MAX_MESSAGE)]) as kubelet:
        response = api_pb2_grpc.RuntimeServiceStub(kubelet).ExecSync(api_pb2.ExecSyncRequest(
            container_id=cid, cmd=["/bin/sh", "-c", f"yes | head -c {GIB}; echo to-stderr >&2"],
            timeout=300))
    assert response.exit_code == 0  # the command ran to its end: never blocked on a pipe
    # Both streams share the budget; which one's bytes came first is a race.
    notices = {name.decode(): (int(limit), int(kept), int(dropped))
               for name, limit, kept, dropped in NOTICE.findall(response.stderr)}
    stderr = NOTICE.sub(b"", response.stderr)
    assert stderr in (b"to-stderr\n"[:len(stderr)], b"")
    assert len(response.stdout) + len(stderr) == DEFAULT_LIMIT
    assert response.stdout == (b"y\n" * (GIB // 2))[:len(response.stdout)]
    assert notices["stdout"] == (DEFAULT_LIMIT, len(response.stdout), GIB - len(response.stdout))
    assert set(notices) <= {"stdout", "stderr"}
    if "stderr" in notices:
        assert notices["stderr"][1:] == (len(stderr), len(b"to-stderr\n") - len(stderr))
    pressure.assert_served(MAX_RSS_GROWTH)


def test_output_within_the_cap_is_whole_and_unmarked(env: Env, pod: Pod) -> None:
    cid = run(env.daemon, pod.id, pod.config, env.image)
    response = exec_sync(env.daemon, cid, "/bin/sh", "-c",
                         "head -c 100000 /dev/zero; echo oops >&2; exit 3")
    assert response.exit_code == 3
    assert response.stdout == b"\0" * 100000
    assert response.stderr == b"oops\n"
