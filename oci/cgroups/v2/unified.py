"""v2 ``unified``: raw key -> value writes, refusing anything that is not a plain file name."""

from __future__ import annotations

from crid.oci.cgroups.fs import write
from crid.oci.errors import InvalidArgument

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from crid.oci.runtime_spec import Resources


def apply(resources: Resources, d: str) -> None:
    for key, value in (resources.get("unified") or {}).items():
        if "/" in key or key in (".", "..") or "." not in key:
            raise InvalidArgument(f"unified: invalid cgroup file name {key!r}")
        write(d, key, str(value))
