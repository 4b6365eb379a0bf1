"""The soak's verdict can fail: a figure that grows is caught, noise is not."""

from __future__ import annotations

import dataclasses

from e2e.soak import trend
from e2e.soak.sampler import Sample

STEADY = Sample(seconds=0, operations=0, pods=20, rss_kib=80_000, pss_kib=70_000, fds=60,
                threads=12, mounts=60, netns=20, cgroups=44, conmons=20, rows=41)


def _run(minutes: int, **growth_per_minute: float) -> list[Sample]:
    samples = []
    for i in range(minutes * 3 + 1):  # every 20 s
        noise = (-1) ** i  # a pod in flight, or not, at the sample
        changed = {"mounts": 60 + 3 * noise}
        changed |= {f: int(getattr(STEADY, f) + rate * i / 3 + noise)
                    for f, rate in growth_per_minute.items()}
        samples.append(dataclasses.replace(STEADY, seconds=i * 20.0, **changed))
    return samples


def test_steady_with_noise_passes() -> None:
    assert trend.too_much(_run(5)) == []


def test_three_fds_a_minute_fail() -> None:
    assert [g.figure for g in trend.too_much(_run(5, fds=3))] == ["fds"]


def test_two_threads_a_minute_fail() -> None:
    assert [g.figure for g in trend.too_much(_run(5, threads=2))] == ["threads"]


def test_leaked_mounts_and_netns_fail() -> None:
    assert [g.figure for g in trend.too_much(_run(5, mounts=5, netns=3))] == ["mounts", "netns"]


def test_rss_slowly_growing_over_hours_fails() -> None:
    assert "rss_kib" in [g.figure for g in trend.too_much(_run(120, rss_kib=200))]


def test_too_few_samples_is_an_error() -> None:
    try:
        trend.growths(_run(0))
    except ValueError as exc:
        assert "a trend needs" in str(exc)
    else:
        raise AssertionError("a trend from one sample")
