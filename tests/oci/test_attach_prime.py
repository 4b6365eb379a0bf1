"""attach_prime finds our own cgroup.procs files and moving there changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

from crid.oci import attach_prime

HYBRID = """12:cpu,cpuacct:/kubepods/pod1
4:name=systemd:/system.slice/crid.service
0::/system.slice/crid.service
"""


def test_candidates_cover_v1_then_v2() -> None:
    assert attach_prime.candidates(HYBRID) == [
        "/sys/fs/cgroup/cpu,cpuacct/kubepods/pod1/cgroup.procs",
        "/sys/fs/cgroup/systemd/system.slice/crid.service/cgroup.procs",
        "/sys/fs/cgroup/system.slice/crid.service/cgroup.procs",
        "/sys/fs/cgroup/unified/system.slice/crid.service/cgroup.procs",
    ]


def test_pure_v2_root() -> None:
    assert attach_prime.candidates("0::/\n") == [
        "/sys/fs/cgroup/cgroup.procs", "/sys/fs/cgroup/unified/cgroup.procs"]


def test_moving_into_our_own_cgroup_leaves_us_there() -> None:
    # A process in a fresh child cgroup primes: a wrong path (the hierarchy's
    # root, say) would move it out of the child, which /proc/self/cgroup shows.
    with open("/proc/self/cgroup") as f:
        procs = next(p for p in attach_prime.candidates(f.read()) if os.path.exists(p))
    child = os.path.join(os.path.dirname(procs), f"crid-prime-{uuid.uuid4().hex[:8]}")
    os.mkdir(child)
    try:
        code = (f"import os; open({child!r} + '/cgroup.procs', 'w').write(str(os.getpid()))\n"
                "from crid.oci import attach_prime; attach_prime._move_into_own_cgroup()\n"
                "print(open('/proc/self/cgroup').read())")
        out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True,
                             check=True).stdout
        assert os.path.basename(child) in out
    finally:
        os.rmdir(child)
