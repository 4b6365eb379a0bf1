"""v1 devices: deny everything, then replay the spec's rules in order, then
allow the devices every container gets (as runc does).

On a cgroup already restricted (an ``update`` with a new list) the rules are
not replayed from "deny all": that would refuse even /dev/null to the running
container for a moment. The cgroup's ``devices.list`` is read instead and
only the difference is written, allows first, then the access taken away
(as runc's emulator transition). A cgroup in allow-all mode does not list its
deny rules, so then, and when the target allows all, the rules are replayed.
"""

from __future__ import annotations

import os

from crid.oci.cgroups.fs import write

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from typing import Any

    from crid.oci.cgroups.devices import Key
    from crid.oci.runtime_spec import DeviceRule, Resources

# null zero full random urandom tty console ptmx pts/* tun
DEFAULT_ALLOW = [
    "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm",
    "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm", "c 10:200 rwm", "c *:* m", "b *:* m",
]


def rule(r: DeviceRule) -> str:
    def num(v: Any) -> str:
        return "*" if v is None or v < 0 else str(v)

    kind = r.get("type") or "a"
    if kind == "a":
        return "a"
    return f"{kind} {num(r.get('major'))}:{num(r.get('minor'))} {r.get('access') or 'rwm'}"


def apply(resources: Resources, d: str, on_create: bool = True) -> None:
    if not on_create and _transition(resources, d):
        return
    write(d, "devices.deny", "a")
    for r in resources.get("devices") or []:
        write(d, "devices.allow" if r.get("allow") else "devices.deny", rule(r))
    for allowed in DEFAULT_ALLOW:
        write(d, "devices.allow", allowed)


def current(listing: str) -> dict[Key, int] | None:
    """The exceptions of an allow-list cgroup from its ``devices.list``; None in
    allow-all mode (its deny exceptions are not listed)."""
    from crid.oci.cgroups import devices as model

    out: dict[Key, int] = {}
    for line in listing.splitlines():
        kind, numbers, access = line.split()
        if kind == "a":
            return None
        major, minor = (model.WILDCARD if n == "*" else int(n) for n in numbers.split(":"))
        out[(kind, major, minor)] = model.access_mask(access)
    return out


def transition(have: dict[Key, int], want: dict[Key, int]) -> list[tuple[str, str]]:
    """(file, rule) writes that turn allow-list ``have`` into ``want``: gains, then losses."""
    from crid.oci.cgroups import devices as model

    def line(key: Key, access: int) -> str:
        return model.format_rule(True, key, access).split(" ", 1)[1]

    out = [("devices.allow", line(k, acc & ~have.get(k, 0)))
           for k, acc in sorted(want.items()) if acc & ~have.get(k, 0)]
    out += [("devices.deny", line(k, acc & ~want.get(k, 0)))
            for k, acc in sorted(have.items()) if acc & ~want.get(k, 0)]
    return out


def _transition(resources: Resources, d: str) -> bool:
    from crid.oci.cgroups import devices as model

    try:
        with open(os.path.join(d, "devices.list")) as f:
            have = current(f.read())
    except FileNotFoundError:
        return False
    target = model.effective(resources.get("devices"))
    if have is None or target.default_allow:
        return False
    for name, text in transition(have, target.rules):
        write(d, name, text)
    return True
