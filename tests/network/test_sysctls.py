from __future__ import annotations

from pathlib import Path

import pytest
from crid.network import sysctls

from crid.errors import InvalidArgument


@pytest.mark.parametrize(("name", "kind"), [
    ("net.ipv4.ip_forward", "net"), ("net/ipv4/ip_forward", "net"),
    ("kernel.shmmax", "ipc"), ("kernel.shm_rmid_forced", "ipc"), ("kernel.msgmax", "ipc"),
    ("kernel.sem", "ipc"), ("fs.mqueue.msg_max", "ipc"),
    ("kernel.panic", None), ("vm.swappiness", None), ("kernel.semx", None),
])
def test_kind(name: str, kind: str | None) -> None:
    assert sysctls.kind(name) == kind


def test_check_refuses_non_namespaced_and_host_ones() -> None:
    sysctls.check({"net.core.somaxconn": "1024", "kernel.sem": "1 2 3 4"},
                  host_network=False, host_ipc=False)
    with pytest.raises(InvalidArgument, match=r"kernel\.panic.*not namespaced"):
        sysctls.check({"kernel.panic": "1"}, host_network=False, host_ipc=False)
    with pytest.raises(InvalidArgument, match="host's network"):
        sysctls.check({"net.core.somaxconn": "1"}, host_network=True, host_ipc=False)
    with pytest.raises(InvalidArgument, match="host's IPC"):
        sysctls.check({"kernel.msgmax": "1"}, host_network=False, host_ipc=True)
    with pytest.raises(InvalidArgument, match="not a valid"):
        sysctls.check({"net..bad": "1"}, host_network=False, host_ipc=False)


def test_apply_writes_under_proc_sys(tmp_path: Path) -> None:
    (tmp_path / "net" / "ipv4").mkdir(parents=True)
    (tmp_path / "net" / "ipv4" / "ip_forward").write_text("0")
    sysctls.apply({"net/ipv4/ip_forward": "1"}, tmp_path)
    assert (tmp_path / "net" / "ipv4" / "ip_forward").read_text() == "1"
    with pytest.raises(InvalidArgument, match="does not exist"):
        sysctls.apply({"net.ipv4.nope": "1"}, tmp_path)
