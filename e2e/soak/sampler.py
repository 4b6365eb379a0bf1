"""What the soak samples: the daemon process's resources and what the node holds.

One ``Sample`` per minute (in the long run): the daemon's RSS and PSS, open
fds and threads; the mounts, pinned netns, cgroups and conmons that belong to
this daemon (scoped by its dirs and cgroup parent, so other daemons on the
machine are not counted); the store's rows; and how many pods were alive.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from e2e.chaos import killer
from e2e.fixtures.daemon import CridDaemon
from e2e.sandbox.pods import PodNet

TABLES = ("sandboxes", "containers", "images")


@dataclasses.dataclass(frozen=True)
class Sample:
    seconds: float  # since the churn began
    operations: int
    pods: int
    rss_kib: int
    pss_kib: int
    fds: int
    threads: int
    mounts: int
    netns: int
    cgroups: int
    conmons: int
    rows: int

    @classmethod
    def fields(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]


def take(daemon: CridDaemon, net: PodNet, *, seconds: float, operations: int,
         pods: int) -> Sample:
    assert daemon.process is not None
    pid = daemon.process.pid
    status = _status(pid)
    points = _mounts_under(daemon.workdir)
    return Sample(
        seconds=round(seconds, 1), operations=operations, pods=pods,
        rss_kib=status["VmRSS"], pss_kib=_pss_kib(pid),
        fds=len(os.listdir(f"/proc/{pid}/fd")), threads=status["Threads"],
        mounts=len(points),
        netns=sum(1 for point, fstype in points
                  if fstype == "nsfs" and point.startswith(f"{daemon.runroot}/")),
        cgroups=len(net.cgroup_dirs()),
        conmons=len(killer.conmons(daemon.runroot)),
        rows=_rows(daemon.root / "crid.db"),
    )


def write_csv(path: Path, samples: Sequence[Sample]) -> None:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(Sample.fields())
        writer.writerows(dataclasses.astuple(s) for s in samples)


def read_csv(path: Path) -> list[Sample]:
    with path.open(newline="") as source:
        rows = list(csv.reader(source))
    assert rows[0] == Sample.fields(), f"{path}: not a soak's samples"
    return [Sample(float(row[0]), *(int(v) for v in row[1:])) for row in rows[1:]]


def _status(pid: int) -> dict[str, int]:
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "Threads"):
            found[key] = int(value.split()[0])
    return found


def _pss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def _mounts_under(workdir: Path) -> list[tuple[str, str]]:
    """(mount point, fs type) of every mount at or below ``workdir``."""
    prefix = str(workdir.resolve())
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        point = fields[4].replace("\\040", " ")
        fstype = fields[fields.index("-") + 1]
        if point == prefix or point.startswith(prefix + "/"):
            found.append((point, fstype))
    return found


def _rows(database: Path) -> int:
    """Rows of the pod, container and image tables, read beside the daemon."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True,
                                            timeout=10)) as db:
        return sum(int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
                   for table in TABLES)
