"""A tiny evaluator of runtime-spec seccomp profiles, for assertions.

Answers what a profile does with a syscall called with given arguments,
following libseccomp's rule: the most specific matching rule wins, and for
one name an argument-free rule applies to any arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

_OPS: dict[str, Callable[[int, int, int], bool]] = {
    "SCMP_CMP_EQ": lambda a, v, _: a == v,
    "SCMP_CMP_NE": lambda a, v, _: a != v,
    "SCMP_CMP_LT": lambda a, v, _: a < v,
    "SCMP_CMP_LE": lambda a, v, _: a <= v,
    "SCMP_CMP_GT": lambda a, v, _: a > v,
    "SCMP_CMP_GE": lambda a, v, _: a >= v,
    "SCMP_CMP_MASKED_EQ": lambda a, v, v2: (a & v) == v2,
}


def action(profile: Mapping[str, Any] | None, name: str,
           args: tuple[int, ...] = ()) -> tuple[str, int | None]:
    """(action, errno) for ``name(*args)``; no profile allows everything."""
    if profile is None:
        return "SCMP_ACT_ALLOW", None
    plain: tuple[str, int | None] | None = None
    for rule in profile.get("syscalls", []):
        if name not in rule["names"]:
            continue
        conditions = rule.get("args") or []
        if not conditions:
            plain = (rule["action"], rule.get("errnoRet"))
            continue
        padded = (*args, *([0] * 6))
        if all(_OPS[c["op"]](padded[c["index"]], c["value"], c.get("valueTwo", 0))
               for c in conditions):
            return rule["action"], rule.get("errnoRet")
    if plain is not None:
        return plain
    return profile["defaultAction"], profile.get("defaultErrnoRet")


def allowed(profile: Mapping[str, Any] | None, name: str, args: tuple[int, ...] = ()) -> bool:
    return action(profile, name, args)[0] == "SCMP_ACT_ALLOW"
