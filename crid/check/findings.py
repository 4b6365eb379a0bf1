"""A finding: one difference between the store and the node, and its repair.

``kind`` names what leaked (``orphan-netns``, ``cgroup-without-owner``, ...),
``subject`` the thing (a path, an id), ``detail`` why it is one. ``repair``
is None when fixing it is not safe without a person (a conf file an
operator may have edited, a process crid cannot prove is its own).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence


@dataclasses.dataclass(frozen=True)
class Finding:
    kind: str
    subject: str
    detail: str
    repair: Callable[[], None] | None = dataclasses.field(default=None, compare=False)
    repair_text: str = ""  # what ``repair`` does, said after it ran

    def line(self) -> str:
        return f"{self.kind}\t{self.subject}\t{self.detail}"

    def as_json(self) -> dict[str, object]:
        return {"kind": self.kind, "subject": self.subject, "detail": self.detail,
                "repairable": self.repair is not None}


def to_text(findings: Sequence[Finding]) -> str:
    return "".join(f.line() + "\n" for f in findings)


def to_json(findings: Sequence[Finding], repaired: Sequence[dict[str, str]] = ()) -> str:
    tree: dict[str, object] = {"clean": not findings,
                               "findings": [f.as_json() for f in findings]}
    if repaired:
        tree["repaired"] = list(repaired)
    return json.dumps(tree, indent=2) + "\n"
