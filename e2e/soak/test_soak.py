"""The soak (issue 20 item 4): pod churn for a set time with 20 pods alive,
the daemon and the node sampled as it goes; nothing may grow beyond a small
slope, and once every pod is gone the node must hold what it held before.

``make test`` runs it for 5 minutes; ``make soak`` for ``SOAK_MINUTES`` (120),
writing the samples to ``build/soak/soak.csv`` and their plot beside it.
Settings come from the environment: ``CRID_SOAK_SECONDS`` (300),
``CRID_SOAK_PODS`` (20), ``CRID_SOAK_WORKERS`` (2), ``CRID_SOAK_CSV`` (where
to keep the samples), ``CRID_SOAK_SEED``. Samples are taken every minute, or
fifteen times in a shorter run (every 20 s at 5 minutes), for a trend.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest
from cri_api.v1 import api_pb2

from e2e.chaos import invariants
from e2e.fixtures.images import busybox_image, push
from e2e.fixtures.registry import Registry
from e2e.sandbox.pods import pod_daemon
from e2e.soak import sampler, trend
from e2e.soak.churn import Churn

SECONDS = float(os.environ.get("CRID_SOAK_SECONDS", "300"))
PODS = int(os.environ.get("CRID_SOAK_PODS", "20"))
WORKERS = int(os.environ.get("CRID_SOAK_WORKERS", "2"))
EVERY = min(60.0, max(10.0, SECONDS / 15))
# What the node holds once every pod is removed must be what it held before.
NODE_FIGURES = ("mounts", "netns", "cgroups", "conmons", "rows")


@pytest.mark.timeout(SECONDS + 600)
def test_soak(registry: Registry, tmp_path: Path) -> None:
    seed = int(os.environ.get("CRID_SOAK_SEED") or random.SystemRandom().randrange(1, 10**9))
    keep = Path(os.environ.get("CRID_SOAK_CSV") or tmp_path / "soak.csv")
    pushed = push(registry, "e2e/soak-busybox", "1", busybox_image())
    with pod_daemon() as (daemon, net):
        daemon.image.PullImage(api_pb2.PullImageRequest(
            image=api_pb2.ImageSpec(image=pushed.reference)))
        before = sampler.take(daemon, net, seconds=0, operations=0, pods=0)
        churn = Churn(daemon.runtime, pushed.reference, pods=PODS, workers=WORKERS,
                      rng=random.Random(seed))
        churn.fill()
        churn.start()
        started = time.monotonic()
        samples: list[sampler.Sample] = []
        try:
            while not churn.errors:
                elapsed = time.monotonic() - started
                samples.append(sampler.take(daemon, net, seconds=elapsed,
                                            operations=churn.operations, pods=churn.alive))
                print(f"soak: {samples[-1]}", flush=True)
                if elapsed >= SECONDS:
                    break
                time.sleep(max(0.0, started + len(samples) * EVERY - time.monotonic()))
        finally:
            churn.stop()
            sampler.write_csv(keep, samples)
        assert not churn.errors, f"seed {seed}: calls failed under churn: {churn.errors}"
        assert min(s.pods for s in samples) >= PODS
        churn.remove_all()
        after = sampler.take(daemon, net, seconds=time.monotonic() - started,
                             operations=churn.operations, pods=0)
        grown = trend.too_much(samples)
        print(f"soak: seed {seed}, {SECONDS:.0f}s, {churn.cycles} pods turned over, "
              f"{churn.operations} calls; samples in {keep}")
        for growth in trend.growths(samples):
            print(f"soak: {growth.describe()}")
        assert not grown, "grew beyond the allowed slope: " + "; ".join(
            g.describe() for g in grown)
        assert {f: getattr(after, f) for f in NODE_FIGURES} == \
            {f: getattr(before, f) for f in NODE_FIGURES}, (before, after)
        assert invariants.crid_check(daemon, set()) == []
