"""How much chaos: the seed, the workers, and how many kills of each kind.

Read from the environment so ``make chaos`` can ask for the long setting and a
failure can be replayed with its seed:

- ``CRID_CHAOS=long`` (default ``short``): 20 kills in the suite, 500 for ``make chaos``;
- ``CRID_CHAOS_SEED``: the seed (a random one otherwise; printed on failure);
- ``CRID_CHAOS_WORKERS``: how many workers (default 4);
- ``CRID_CHAOS_KILLS``: total kills, overriding the setting's (three fifths
  hit the daemon, one fifth conmon, one fifth ``crid-runtime create``);
- ``CRID_CHAOS_SHARED_PID=0``: every pod gives each container its own PID
  namespace (kubelet's default). By default a third of the pods share one PID
  namespace instead (an infra process, catatonit), as shareProcessNamespace asks.
"""

from __future__ import annotations

import dataclasses
import os
import random


@dataclasses.dataclass(frozen=True)
class Settings:
    seed: int
    workers: int
    daemon_kills: int
    conmon_kills: int
    runtime_kills: int
    shared_pid: bool = True

    @property
    def kills(self) -> int:
        return self.daemon_kills + self.conmon_kills + self.runtime_kills

    def describe(self) -> str:
        return (f"CRID_CHAOS_SEED={self.seed} CRID_CHAOS_WORKERS={self.workers} "
                f"(kills: {self.daemon_kills} daemon, {self.conmon_kills} conmon, "
                f"{self.runtime_kills} runtime)"
                + ("" if self.shared_pid else " CRID_CHAOS_SHARED_PID=0"))


def _split(total: int) -> tuple[int, int, int]:
    """Three fifths of the kills hit the daemon, one fifth conmon, one fifth the
    runtime."""
    conmon = total // 5
    runtime = total // 5
    return total - conmon - runtime, conmon, runtime


def from_environment() -> Settings:
    long = os.environ.get("CRID_CHAOS", "short") == "long"
    total = int(os.environ.get("CRID_CHAOS_KILLS", "500" if long else "20"))
    seed_text = os.environ.get("CRID_CHAOS_SEED", "")
    seed = int(seed_text) if seed_text else random.SystemRandom().randrange(1, 10**9)
    daemon, conmon, runtime = _split(total)
    return Settings(seed=seed, workers=int(os.environ.get("CRID_CHAOS_WORKERS", "4")),
                    daemon_kills=daemon, conmon_kills=conmon, runtime_kills=runtime,
                    shared_pid=os.environ.get("CRID_CHAOS_SHARED_PID", "1") != "0")
