"""Plot a soak's samples (``python -P -m e2e.soak.plot soak.csv soak.png``):
memory, fds and threads, and what the node holds, against minutes of churn."""

from __future__ import annotations

import sys
from pathlib import Path

from matplotlib.figure import Figure

from e2e.soak.sampler import read_csv

PANELS = (
    ("daemon memory (MiB)", {"RSS": "rss_kib", "PSS": "pss_kib"}, 1 / 1024),
    ("daemon fds and threads", {"open fds": "fds", "threads": "threads"}, 1.0),
    ("what the node holds", {"pods alive": "pods", "mounts": "mounts", "netns": "netns",
                             "conmons": "conmons", "store rows": "rows"}, 1.0),
    ("cgroup dirs, every hierarchy", {"cgroups": "cgroups"}, 1.0),
)


def plot(csv_path: Path, png_path: Path) -> None:
    samples = read_csv(csv_path)
    minutes = [s.seconds / 60 for s in samples]
    figure = Figure(figsize=(9, 12))  # no pyplot: no display, a file only
    axes = figure.subplots(len(PANELS), 1, sharex=True)
    for ax, (title, lines, scale) in zip(axes, PANELS, strict=True):
        for label, field in lines.items():
            ax.plot(minutes, [getattr(s, field) * scale for s in samples], label=label)
        ax.set_title(title)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize="small")
    axes[-1].set_xlabel("minutes of churn")
    figure.suptitle(f"crid soak: {samples[-1].operations} calls in "
                    f"{samples[-1].seconds / 60:.0f} minutes")
    figure.tight_layout()
    figure.savefig(png_path, dpi=100)


if __name__ == "__main__":
    plot(Path(sys.argv[1]), Path(sys.argv[2]))
