"""v2 pids: pids.max ("max" when zero or negative); the file is as on v1, so v1's code serves."""

from __future__ import annotations

from crid.oci.cgroups.v1.pids import apply

__all__ = ["apply"]
