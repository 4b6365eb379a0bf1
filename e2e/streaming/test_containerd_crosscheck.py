"""Our SPDY test client against containerd's streaming server (Debian's
containerd, with kubelet's own Go streaming code) and against crid's: the
same exec's must give the same bytes and exit codes, so the client is not
only checked against the server it was written next to."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from e2e.fixtures.registry import Registry
from e2e.streaming import spdy_client
from e2e.streaming.runtimes import Target, crid_and_containerd

MEGABYTE = 1024 * 1024


@pytest.fixture(scope="module")
def targets(registry: Registry) -> Iterator[tuple[Target, Target]]:
    with crid_and_containerd(registry, ["/bin/sleep", "3600"]) as both:
        yield both


def both_run(targets: tuple[Target, Target], *cmd: str,
             stdin: bytes | None = None) -> tuple[spdy_client.ExecResult, ...]:
    async def run(target: Target) -> spdy_client.ExecResult:
        url = target.exec_url(*cmd, stdin=stdin is not None)
        # As kubectl does: Go's spdystream (containerd's end) ignores windows, so a
        # client enforcing its own would reset the streams of a big output.
        return await spdy_client.remote_command(url, stdin=stdin, flow_control=False)
    return tuple(asyncio.run(run(target)) for target in targets)


def seen(result: spdy_client.ExecResult) -> tuple[bytes, bytes, int]:
    return result.stdout, result.stderr, result.exit_code


@pytest.mark.parametrize(("cmd", "stdin", "expected"), [
    (("/bin/echo", "hi"), None, (b"hi\n", b"", 0)),
    (("/bin/sh", "-c", "exit 3"), None, (b"", b"", 3)),
    (("/bin/sh", "-c", "echo out; echo err >&2; exit 1"), None, (b"out\n", b"err\n", 1)),
    (("/bin/cat",), b"round\ntrip\x00\xff", (b"round\ntrip\x00\xff", b"", 0)),
], ids=["echo", "nonzero-exit", "stderr", "stdin-cat"])
def test_exec_gives_the_same_bytes_and_exit_code(
        targets: tuple[Target, Target], cmd: tuple[str, ...], stdin: bytes | None,
        expected: tuple[bytes, bytes, int]) -> None:
    crid, containerd = both_run(targets, *cmd, stdin=stdin)
    assert seen(containerd) == expected
    assert seen(crid) == expected
    assert crid.protocol == containerd.protocol == "v4.channel.k8s.io"


def test_exec_status_for_a_nonzero_exit_has_the_same_shape(
        targets: tuple[Target, Target]) -> None:
    crid, containerd = both_run(targets, "/bin/sh", "-c", "exit 42")
    # The message text differs (it names the runtime's error); what clients read must not.
    for status in (crid.status, containerd.status):
        assert (status["status"], status["reason"]) == ("Failure", "NonZeroExitCode")
        assert status["details"] == {"causes": [{"reason": "ExitCode", "message": "42"}]}


def test_a_megabyte_of_output_arrives_the_same(targets: tuple[Target, Target]) -> None:
    crid, containerd = both_run(targets, "/bin/sh", "-c",
                                f"seq 1 200000 | head -c {MEGABYTE}; echo done >&2")
    expected = "".join(f"{n}\n" for n in range(1, 200001)).encode()[:MEGABYTE]
    assert seen(containerd) == (expected, b"done\n", 0)
    assert seen(crid) == (expected, b"done\n", 0)
