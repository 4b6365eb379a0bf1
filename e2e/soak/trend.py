"""The soak's verdict: does anything grow beyond a small slope?

For each sampled figure, a least-squares line through the samples after the
warm-up (the first fifth of the run, at least two minutes: pools fill, caches
warm, malloc's arenas grow with the load) gives the growth
it projects over that window. The growth allowed is a fixed slack, for the
noise of a figure sampled while pods come and go, plus a rate per hour. What
the node holds (mounts, netns, cgroups, conmons, rows) may grow at no rate at
all: its slack is a tenth of its size, for the pods in flight at a sample.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from e2e.soak.sampler import Sample

WARMUP_FRACTION = 0.2
MIN_WARMUP = 120.0  # seconds: malloc's arenas grow with the first minutes' load
MIN_POINTS = 4


@dataclasses.dataclass(frozen=True)
class Allowance:
    slack: float  # in the figure's unit, whatever the run's length
    per_hour: float
    relative_slack: float = 0.0  # of the figure's mean after the warm-up


ALLOWED = {
    # A tenth of an idle daemon's RSS: arenas step up with peaks of load.
    "rss_kib": Allowance(slack=8192, per_hour=4096),
    "pss_kib": Allowance(slack=8192, per_hour=4096),
    # Thread pools fill up to their caps as load peaks, and fds come and go
    # with calls in flight: a few either way. A leak per pod or call is far more.
    "fds": Allowance(slack=8, per_hour=2),
    "threads": Allowance(slack=4, per_hour=1),
    "mounts": Allowance(slack=2, per_hour=0, relative_slack=0.1),
    "netns": Allowance(slack=2, per_hour=0, relative_slack=0.1),
    "cgroups": Allowance(slack=2, per_hour=0, relative_slack=0.1),
    "conmons": Allowance(slack=2, per_hour=0, relative_slack=0.1),
    "rows": Allowance(slack=2, per_hour=0, relative_slack=0.1),
}


@dataclasses.dataclass(frozen=True)
class Growth:
    figure: str
    slope_per_hour: float
    projected: float  # growth over the window, from the slope
    allowed: float

    @property
    def too_much(self) -> bool:
        return self.projected > self.allowed

    def describe(self) -> str:
        return (f"{self.figure}: {self.slope_per_hour:+.1f}/h, "
                f"{self.projected:+.1f} over the window (allowed {self.allowed:.1f})")


def after_warmup(samples: Sequence[Sample]) -> list[Sample]:
    if not samples:
        return []
    warm = max(samples[-1].seconds * WARMUP_FRACTION, MIN_WARMUP)
    return [s for s in samples if s.seconds >= warm]


def growths(samples: Sequence[Sample]) -> list[Growth]:
    window = after_warmup(samples)
    if len(window) < MIN_POINTS:
        raise ValueError(f"{len(window)} samples after the warm-up; "
                         f"a trend needs {MIN_POINTS}")
    xs = [s.seconds / 3600 for s in window]
    hours = xs[-1] - xs[0]
    found = []
    for figure, allowance in ALLOWED.items():
        ys = [float(getattr(s, figure)) for s in window]
        slope = _slope(xs, ys)
        mean = sum(ys) / len(ys)
        allowed = (allowance.slack + allowance.per_hour * hours
                   + allowance.relative_slack * mean)
        found.append(Growth(figure, slope, slope * hours, allowed))
    return found


def too_much(samples: Sequence[Sample]) -> list[Growth]:
    return [g for g in growths(samples) if g.too_much]


def _slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    mean_x = sum(xs) / len(xs)
    mean_y = sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread
