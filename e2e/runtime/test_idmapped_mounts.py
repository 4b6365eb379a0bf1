"""crid-runtime's idmapped mounts (``mounts[].uidMappings``/``gidMappings``),
on bundles of its own (runc 1.1 has none: ``features`` has no idmap key).

In a new user namespace (the runtime writes its maps), a bind mount with the
container's mappings shows the host's root-owned files as root's, and a file
root writes lands on disk as uid 0; in the host's user namespace, a mount
with mappings of its own (a throwaway user namespace) shows its files under
the shifted ids. Both are idmapped by the runtime's first child, as host
root, before it joins anything; the container only attaches them.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from e2e.fixtures.bundle import Bundle, Runtime
from e2e.runtime.helpers import USERNS_HOST_ID, out, userns_bundle


def _volume(request: pytest.FixtureRequest) -> Path:
    made = Path(tempfile.mkdtemp(prefix="crid-idmap-"))
    made.chmod(0o777)
    request.addfinalizer(lambda: subprocess.run(["rm", "-rf", str(made)], check=False))
    (made / "host-file").write_text("host\n")
    return made


def _mapping(host_id: int) -> list[dict[str, int]]:
    return [{"containerID": 0, "hostID": host_id, "size": 65536}]


def test_features_say_idmap_and_userns(crid_runtime: Runtime) -> None:
    found = json.loads(crid_runtime("features", check=True).stdout)
    assert found["linux"]["mountExtensions"]["idmap"]["enabled"] is True
    assert "user" in found["linux"]["namespaces"]


def test_idmapped_bind_in_a_new_user_namespace(crid_runtime: Runtime, bundle: Bundle,
                                               request: pytest.FixtureRequest) -> None:
    b = userns_bundle(bundle, request)
    volume = _volume(request)
    b.config["mounts"].append({"destination": "/data", "type": "bind", "source": str(volume),
                               "options": ["rbind", "rw"],
                               "uidMappings": _mapping(USERNS_HOST_ID),
                               "gidMappings": _mapping(USERNS_HOST_ID)})
    b.config["mounts"].append({"destination": "/plain", "type": "bind", "source": str(volume),
                               "options": ["rbind", "ro"]})
    seen = out(crid_runtime, b, "stat -c %u /data/host-file /plain/host-file; "
                                "echo x > /data/by-root")
    assert seen.split() == ["0", "65534"]  # without the idmap: nobody's
    assert (volume / "by-root").stat().st_uid == 0


def test_idmapped_bind_with_mappings_of_its_own(crid_runtime: Runtime, bundle: Bundle,
                                                request: pytest.FixtureRequest) -> None:
    volume = _volume(request)
    os.chown(volume / "host-file", 1000, 1000)
    # On-disk 0 is 5000 inside, on-disk 1000 is 6000: a throwaway user
    # namespace 0 -> 5000 defines the idmap, the container stays the host's.
    bundle.config["mounts"].append({"destination": "/data", "type": "bind",
                                    "source": str(volume), "options": ["rbind", "ro"],
                                    "uidMappings": _mapping(5000),
                                    "gidMappings": _mapping(5000)})
    seen = out(crid_runtime, bundle, "stat -c %u:%g /data /data/host-file; "
                                     "touch /data/x 2>/dev/null && echo rw || echo ro")
    assert seen.split() == ["5000:5000", "6000:6000", "ro"]  # "ro" kept on the idmapped clone


def test_idmap_only_for_binds_with_both_maps(crid_runtime: Runtime, bundle: Bundle,
                                              request: pytest.FixtureRequest) -> None:
    bundle.config["mounts"].append({"destination": "/data", "type": "bind",
                                    "source": str(_volume(request)), "options": ["rbind"],
                                    "uidMappings": _mapping(5000)})
    bundle.write(["true"])
    refused = crid_runtime.run(bundle)
    assert refused.returncode != 0 and "both uidMappings and gidMappings" in refused.stderr


def test_sysfs_of_the_hosts_netns_is_bound_read_only(crid_runtime: Runtime, bundle: Bundle,
                                                      request: pytest.FixtureRequest) -> None:
    """A user namespace may mount sysfs only for a net namespace it owns; with
    the host's netns the host's /sys is bound instead, and must keep the
    asked ro,nosuid,nodev,noexec, below it too."""
    b = userns_bundle(bundle, request)
    b.config["linux"]["namespaces"] = [n for n in b.config["linux"]["namespaces"]
                                       if n["type"] != "network"]
    b.config["mounts"].append({"destination": "/sys", "type": "sysfs", "source": "sysfs",
                               "options": ["nosuid", "noexec", "nodev", "ro"]})
    masked = set(b.config["linux"].get("maskedPaths") or [])
    seen = out(crid_runtime, b, "cat /proc/self/mountinfo")
    options = {f[4]: set(f[5].split(",")) for f in (line.split() for line in seen.splitlines())
               if (f[4] == "/sys" or f[4].startswith("/sys/")) and f[4] not in masked}
    assert "/sys" in options
    assert all({"ro", "nosuid", "nodev", "noexec"} <= o for o in options.values()), options
