"""``Json``: the one name for a JSON object whose shape crid does not fix.

Registry responses, CNI configs and results, NRI passthrough, CDI documents:
crid reads a few keys of each and carries the rest as it came, so the
honest type is "an object of anything". Shapes crid does fix have their own
``TypedDict`` (the runtime-spec's, in ``crid.oci.runtime_spec``).

A leaf: it imports only ``typing``, so every package can import it without a
cycle. crid-runtime, whose start-up never imports ``typing``, imports it
only under ``TYPE_CHECKING``.
"""

from __future__ import annotations

from typing import Any, TypeAlias

Json: TypeAlias = dict[str, Any]
