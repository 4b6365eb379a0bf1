"""What a crash in the middle of a user-namespaced create leaves: the idmapped
clones of image layers, still attached below the writable layer's dir. Removing
that dir must detach them first, never delete the image's files through them."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from crid.oci.linux import Syscalls

from crid.containers import idmap, rootfs


def test_removing_a_layer_dir_spares_the_layers_a_crash_left_mounted(tmp_path: Path) -> None:
    layer = tmp_path / "image-layer"
    (layer / "bin").mkdir(parents=True)
    (layer / "bin" / "tool").write_text("the image's\n")
    layer_dir = tmp_path / "container-layer"
    (layer_dir / "upper").mkdir(parents=True)
    holder = subprocess.Popen(["unshare", "--user", "--map-root-user", "sleep", "30"])
    try:
        user = f"/proc/{holder.pid}/ns/user"
        # unshare(1) makes the namespace, then writes its maps: an idmapped
        # mount of a namespace without them is EINVAL.
        while os.stat(user).st_ino == os.stat("/proc/self/ns/user").st_ino or not all(
                Path(f"/proc/{holder.pid}/{m}").read_text().strip()
                for m in ("uid_map", "gid_map")):
            time.sleep(0.001)
        scratch = layer_dir / rootfs.IDMAPPED
        scratch.mkdir()
        (scratch / "0").mkdir()
        idmap.bind(Syscalls(), layer, user, scratch / "0")  # as the crash left it
    finally:
        holder.kill()
        holder.wait()
    assert (scratch / "0" / "bin" / "tool").exists()
    rootfs.remove_layer(layer_dir)
    assert not layer_dir.exists()
    assert (layer / "bin" / "tool").read_text() == "the image's\n"
