"""Exec against our SPDY server from Go's spdystream, the library behind
kubelet, kubectl and crictl: the interoperability check no Python client gives.

The client is ``e2e/streaming/gospdy`` (built here from Debian's
golang-github-docker-spdystream-dev). Go never sends WINDOW_UPDATE, so this
also runs the server's path for peers that ignore flow control.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from crid.streaming.tokens import ExecRequest, PortForwardRequest
from e2e.streaming.conftest import ServerThread

SOURCE = Path(__file__).parent / "gospdy"


@pytest.fixture(scope="module")
def gospdy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gospdy") / "gospdy"
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": "/usr/share/gocode",
           "GOCACHE": str(out.parent / "cache")}
    subprocess.run(["go", "build", "-o", str(out), "."], cwd=SOURCE, env=env, check=True,
                   timeout=300)
    return out


def go_exec(gospdy: Path, tmp_path: Path, url: str,
            stdin: bytes | None = None) -> tuple[bytes, bytes, dict[str, object]]:
    argv = [str(gospdy), url, str(tmp_path / "capture")] + (["stdin"] if stdin is not None else [])
    done = subprocess.run(argv, input=stdin or b"", capture_output=True, timeout=60, check=True)
    stderr, _, status = done.stderr.rpartition(b"STATUS ")
    return done.stdout, stderr, dict(json.loads(status))


def test_exit_code_and_both_outputs(streaming: ServerThread, gospdy: Path,
                                    tmp_path: Path) -> None:
    url = streaming.url_for(ExecRequest("c1", ("sh", "-c", "echo out; echo err >&2; exit 3")))
    stdout, stderr, status = go_exec(gospdy, tmp_path, url)
    assert (stdout, stderr) == (b"out\n", b"err\n")
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"] == {"causes": [{"reason": "ExitCode", "message": "3"}]}


def test_success(streaming: ServerThread, gospdy: Path, tmp_path: Path) -> None:
    url = streaming.url_for(ExecRequest("c1", ("true",)))
    assert go_exec(gospdy, tmp_path, url)[2] == {"metadata": {}, "status": "Success"}


def test_stdin_round_trip_without_flow_control(streaming: ServerThread, gospdy: Path,
                                               tmp_path: Path) -> None:
    payload = os.urandom(5 << 20)
    url = streaming.url_for(ExecRequest("c1", ("cat",), stdin=True))
    stdout, _, status = go_exec(gospdy, tmp_path, url, stdin=payload)
    assert hashlib.sha256(stdout).digest() == hashlib.sha256(payload).digest()
    assert status["status"] == "Success"


def test_ten_megabytes_of_output(streaming: ServerThread, gospdy: Path,
                                 tmp_path: Path) -> None:
    url = streaming.url_for(ExecRequest("c1", ("head", "-c", str(10 << 20), "/dev/zero")))
    stdout, _, _ = go_exec(gospdy, tmp_path, url)
    assert stdout == bytes(10 << 20)


def test_port_forward(streaming: ServerThread, gospdy: Path, tmp_path: Path,
                      digest_server: int) -> None:
    payload = os.urandom(20 << 20)
    url = streaming.url_for(PortForwardRequest("pod-1", (digest_server,)))
    argv = [str(gospdy), url, str(tmp_path / "capture"), "portforward", str(digest_server)]
    done = subprocess.run(argv, input=payload, capture_output=True, timeout=60, check=True)
    assert done.stdout.decode() == hashlib.sha256(payload).hexdigest()
    assert done.stderr == b"ERROR \n"
