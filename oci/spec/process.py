"""The runtime-spec ``process``: argv, environment, cwd, terminal, rlimits.

Argv follows kubelet/containerd exactly: a CRI ``command`` replaces the
image's Entrypoint *and* drops its Cmd; CRI ``args`` replace Cmd; with only
``args`` the image Entrypoint is kept. The environment is a default PATH
(when the image has none), ``HOSTNAME``, the image's Env, then the request's
envs, a later value of a name replacing an earlier one in place.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence

from cri_api.v1 import api_pb2
from crid.oci.runtime_spec import Capabilities, Process, User
from crid.oci.spec.image_config import ImageConfig

from crid.errors import InvalidArgument

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"



def process_args(config: api_pb2.ContainerConfig, image: ImageConfig) -> list[str]:
    command: Sequence[str] = list(config.command)
    args: Sequence[str] = list(config.args)
    if not command:
        if not args:
            args = image.cmd
        # An Entrypoint of [""] is how images reset an inherited entrypoint.
        if image.entrypoint != ("",):
            command = image.entrypoint
    argv = [*command, *args]
    if not argv:
        raise InvalidArgument(
            "no command specified: the request has no command or args and the image "
            "has no Entrypoint or Cmd"
        )
    return argv


def merge_env(layers: Iterable[Iterable[str]]) -> list[str]:
    """``KEY=VALUE`` lists merged in order; a later KEY replaces in place."""
    merged: dict[str, str] = {}
    for layer in layers:
        for entry in layer:
            merged[entry.partition("=")[0]] = entry
    return list(merged.values())


def process_env(
    config: api_pb2.ContainerConfig, image: ImageConfig, hostname: str
) -> list[str]:
    request = []
    for kv in config.envs:
        if not kv.key or "=" in kv.key:
            raise InvalidArgument(f"environment variable name {kv.key!r} is invalid")
        request.append(f"{kv.key}={kv.value}")
    base = [DEFAULT_PATH] if not any(e.startswith("PATH=") for e in image.env) else []
    host = [f"HOSTNAME={hostname}"] if hostname else []
    return merge_env([base, host, image.env, request])


def working_dir(config: api_pb2.ContainerConfig, image: ImageConfig) -> str:
    """The request's working dir, else the image's, else ``/``.

    One under /proc is refused: the container's /proc is always procfs, and
    /proc/self/fd/N, /proc/<pid>/cwd or /root there are magic links a
    malicious image's WorkingDir uses to start its process outside its root
    (CVE-2024-21626). A lexical check, for a clear early error; crid-runtime
    checks where the cwd really resolves (a symlink in the image to
    /proc/self/fd/N gets past this and is refused there).
    """
    cwd = config.working_dir or image.working_dir or "/"
    if not cwd.startswith("/"):
        raise InvalidArgument(f"working directory {cwd!r} is not an absolute path")
    if "proc" in (_first_component(cwd), _first_component(posixpath.normpath(cwd))):
        raise InvalidArgument(
            f"working directory {cwd!r} is under /proc: refused (a /proc magic link "
            "would start the process outside the container, CVE-2024-21626)")
    return cwd


def _first_component(path: str) -> str:
    return path.lstrip("/").split("/", 1)[0]


def build_process(
    config: api_pb2.ContainerConfig,
    image: ImageConfig,
    *,
    hostname: str,
    user: User,
    capabilities: Capabilities | None,
    no_new_privileges: bool,
    oom_score_adj: int | None,
    nofile: int,
) -> Process:
    """``nofile`` becomes both RLIMIT_NOFILE limits: containers on cri-o and
    containerd nodes inherit the runtime's (1048576 under their systemd
    units) with the soft limit raised, and software like databases expects it."""
    process: Process = {
        "terminal": config.tty,
        "user": user,
        "args": process_args(config, image),
        "env": process_env(config, image, hostname),
        "cwd": working_dir(config, image),
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile}],
        "noNewPrivileges": no_new_privileges,
    }
    if capabilities is not None:
        process["capabilities"] = capabilities
    if oom_score_adj is not None:
        process["oomScoreAdj"] = oom_score_adj
    return process
