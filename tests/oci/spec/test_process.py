"""argv, environment and cwd merging as kubelet and containerd do it."""

from __future__ import annotations

import pytest
from cri_api.v1 import api_pb2
from crid.oci.spec import process
from crid.oci.spec.image_config import ImageConfig

from crid.errors import InvalidArgument
from tests.oci.spec.fakes import container_config

EP = ("/entry", "--flag")
CMD = ("serve", "--port=80")
COMMAND = ["/bin/sh", "-c"]
ARGS = ["echo hi"]


@pytest.mark.parametrize(
    ("command", "args", "entrypoint", "cmd", "expected"),
    [
        # Nothing in the request: image Entrypoint + Cmd.
        ([], [], EP, CMD, [*EP, *CMD]),
        ([], [], EP, (), list(EP)),
        ([], [], (), CMD, list(CMD)),
        # Only args: image Entrypoint + request args; image Cmd dropped.
        ([], ARGS, EP, CMD, [*EP, *ARGS]),
        ([], ARGS, (), CMD, ARGS),
        # Command: replaces Entrypoint and drops Cmd.
        (COMMAND, [], EP, CMD, COMMAND),
        (COMMAND, [], (), (), COMMAND),
        # Command + args.
        (COMMAND, ARGS, EP, CMD, [*COMMAND, *ARGS]),
        (COMMAND, ARGS, (), (), [*COMMAND, *ARGS]),
        # An Entrypoint of [""] resets it.
        ([], [], ("",), CMD, list(CMD)),
        ([], ARGS, ("",), CMD, ARGS),
    ],
)
def test_args(command: list[str], args: list[str], entrypoint: tuple[str, ...],
              cmd: tuple[str, ...], expected: list[str]) -> None:
    config = container_config(command=command, args=args)
    image = ImageConfig(entrypoint=entrypoint, cmd=cmd)
    assert process.process_args(config, image) == expected


@pytest.mark.parametrize(("entrypoint", "cmd"), [((), ()), (("",), ())])
def test_no_command_at_all(entrypoint: tuple[str, ...], cmd: tuple[str, ...]) -> None:
    with pytest.raises(InvalidArgument, match="no command specified"):
        process.process_args(container_config(), ImageConfig(entrypoint=entrypoint, cmd=cmd))


def _envs(**kv: str) -> list[api_pb2.KeyValue]:
    return [api_pb2.KeyValue(key=k, value=v) for k, v in kv.items()]


def test_env_request_wins_in_place() -> None:
    image = ImageConfig(env=("PATH=/img/bin", "A=image", "B=image"))
    config = container_config(envs=_envs(B="request", C="new", A="req=with=equals"))
    assert process.process_env(config, image, "pod-host") == [
        "HOSTNAME=pod-host", "PATH=/img/bin", "A=req=with=equals", "B=request", "C=new",
    ]


def test_env_default_path_when_image_has_none() -> None:
    env = process.process_env(container_config(envs=_envs(X="1")), ImageConfig(), "")
    assert env == [process.DEFAULT_PATH, "X=1"]


def test_env_request_may_override_path_and_hostname() -> None:
    config = container_config(envs=_envs(PATH="/mine", HOSTNAME="other"))
    assert process.process_env(config, ImageConfig(), "h") == ["PATH=/mine", "HOSTNAME=other"]


def test_env_empty_value_is_kept() -> None:
    env = process.process_env(container_config(envs=_envs(EMPTY="")),
                              ImageConfig(env=("PATH=/p",)), "")
    assert env == ["PATH=/p", "EMPTY="]


@pytest.mark.parametrize("key", ["", "A=B"])
def test_env_bad_names(key: str) -> None:
    config = container_config(envs=[api_pb2.KeyValue(key=key, value="v")])
    with pytest.raises(InvalidArgument):
        process.process_env(config, ImageConfig(), "")


@pytest.mark.parametrize(
    ("request_dir", "image_dir", "expected"),
    [("/req", "/img", "/req"), ("", "/img", "/img"), ("/req", "", "/req"), ("", "", "/")],
)
def test_working_dir(request_dir: str, image_dir: str, expected: str) -> None:
    config = container_config(working_dir=request_dir)
    assert process.working_dir(config, ImageConfig(working_dir=image_dir)) == expected


def test_relative_working_dir_is_invalid() -> None:
    with pytest.raises(InvalidArgument, match="not an absolute path"):
        process.working_dir(container_config(), ImageConfig(working_dir="app"))


def test_build_process_fields() -> None:
    config = container_config(tty=True, command=["/bin/true"])
    got = process.build_process(
        config, ImageConfig(), hostname="h", user={"uid": 1, "gid": 2},
        capabilities={"bounding": []}, no_new_privileges=True, oom_score_adj=5,
        nofile=4096,
    )
    assert got["terminal"] is True
    assert got["args"] == ["/bin/true"]
    assert got["cwd"] == "/"
    assert got["noNewPrivileges"] is True
    assert got["oomScoreAdj"] == 5
    assert got["user"] == {"uid": 1, "gid": 2}
    assert got["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 4096}]


def test_image_config_from_json() -> None:
    image = ImageConfig.from_json({"config": {
        "User": "1000:1000", "Env": ["A=1"], "Entrypoint": ["/e"], "Cmd": None,
        "WorkingDir": "/w", "StopSignal": "SIGQUIT", "Labels": {"l": "v"},
    }})
    assert image == ImageConfig("1000:1000", ("A=1",), ("/e",), (), "/w", "SIGQUIT", {"l": "v"})
    assert ImageConfig.from_json({}) == ImageConfig()
    with pytest.raises(InvalidArgument, match="Env"):
        ImageConfig.from_json({"config": {"Env": "A=1"}})


@pytest.mark.parametrize("cwd", [
    "/proc/self/fd/7", "/proc/1/cwd", "/proc/thread-self/root/etc", "//proc/self/fd/3",
    "/./proc/self/fd/3", "/tmp/../proc/self/fd/3", "/proc/self/fd/7/..", "/proc",
])
def test_working_dir_under_proc_is_refused(cwd: str) -> None:
    """CVE-2024-21626's shape, from the request or from the image."""
    with pytest.raises(InvalidArgument, match="under /proc"):
        process.working_dir(container_config(working_dir=cwd), ImageConfig())
    with pytest.raises(InvalidArgument, match="under /proc"):
        process.working_dir(container_config(), ImageConfig(working_dir=cwd))


@pytest.mark.parametrize("cwd", ["/procedures", "/srv/proc/self/fd/3", "/home/proc"])
def test_working_dir_merely_named_proc_is_fine(cwd: str) -> None:
    assert process.working_dir(container_config(working_dir=cwd), ImageConfig()) == cwd
