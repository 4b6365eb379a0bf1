"""v2 cpuset: cpus and mems; the files are named as on v1, so v1's code serves."""

from __future__ import annotations

from crid.oci.cgroups.v1.cpuset import apply

__all__ = ["apply"]
