"""Mount option words -> flags, propagation, recursive attributes and data."""

from __future__ import annotations

from crid.oci import linux as L
from crid.oci import mounts


def test_flags_and_data() -> None:
    o = mounts.parse(["nosuid", "noexec", "ro", "mode=755", "size=65536k"])
    assert o.flags == L.MS_NOSUID | L.MS_NOEXEC | L.MS_RDONLY
    assert o.data == "mode=755,size=65536k"
    assert not o.is_bind


def test_clearing_words() -> None:
    o = mounts.parse(["ro", "rw", "nodev", "dev"])
    assert o.flags == 0


def test_rbind_and_propagation() -> None:
    o = mounts.parse(["rbind", "rslave", "private"])
    assert o.is_bind and o.flags == L.MS_BIND | L.MS_REC
    assert o.propagation == [L.MS_SLAVE | L.MS_REC, L.MS_PRIVATE]


def test_recursive_attrs() -> None:
    o = mounts.parse(["rro", "rnosuid", "rrw"])
    assert o.attr_set == L.MOUNT_ATTR_NOSUID
    assert o.attr_clr == L.MOUNT_ATTR_RDONLY
