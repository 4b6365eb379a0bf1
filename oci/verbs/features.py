"""``features``: what this runtime supports, in the JSON shape ``runc features`` prints."""

from __future__ import annotations

import json
import sys

from crid.oci import capabilities, mounts, seccomp
from crid.oci.config import NAMESPACES
from crid.oci.context import Context


def features() -> dict[str, object]:
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.0.2",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer",
                  "poststart", "poststop"],
        "mountOptions": mounts.OPTION_WORDS,
        "linux": {
            "namespaces": [n for n in NAMESPACES if n != "time"],
            "capabilities": capabilities.NAMES[: capabilities.last_cap() + 1],
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            "seccomp": {
                "enabled": True,
                "actions": seccomp.ACTIONS,
                "operators": sorted(seccomp.OPERATORS),
                "archs": sorted(seccomp.ARCHES),
            },
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            # mounts with uidMappings/gidMappings become idmapped (mount_setattr,
            # Linux 5.12); the daemon also checks the kernel and filesystem.
            "mountExtensions": {"idmap": {"enabled": True}},
        },
        "annotations": {"io.github.crid.runtime.version": _version()},
    }


def _version() -> str:
    from crid import __version__

    return __version__


def main(ctx: Context, argv: list[str]) -> int:
    sys.stdout.write(json.dumps(features(), indent=4) + "\n")
    return 0
