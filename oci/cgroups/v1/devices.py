"""v1 devices: deny everything, then replay the spec's rules in order, then
allow the devices every container gets (as runc does)."""

from __future__ import annotations

from crid.oci.cgroups.fs import write

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from typing import Any

# null zero full random urandom tty console ptmx pts/* tun
DEFAULT_ALLOW = [
    "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm",
    "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm", "c 10:200 rwm", "c *:* m", "b *:* m",
]


def rule(r: dict[str, Any]) -> str:
    def num(v: Any) -> str:
        return "*" if v is None or v < 0 else str(v)

    kind = r.get("type") or "a"
    if kind == "a":
        return "a"
    return f"{kind} {num(r.get('major'))}:{num(r.get('minor'))} {r.get('access') or 'rwm'}"


def apply(resources: dict[str, Any], d: str) -> None:
    write(d, "devices.deny", "a")
    for r in resources.get("devices") or []:
        write(d, "devices.allow" if r.get("allow") else "devices.deny", rule(r))
    for allowed in DEFAULT_ALLOW:
        write(d, "devices.allow", allowed)
