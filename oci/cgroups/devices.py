"""Device rules as the v1 ``devices`` controller understands them, for both versions.

A runtime-spec rule list (``linux.resources.devices``) is replayed, in order,
onto a model of a v1 device cgroup (as runc's devices emulator does): a
default (allow or deny everything) plus exceptions keyed by (type, major,
minor) with an access mask. A rule of type ``a`` resets the default and drops
every exception; any other rule adds access to an exception of the other
kind, or takes access away from one of the same kind (an exact match, as the
kernel does). Taking access away from a device a wildcard exception covers
would silently not work on v1, so it is refused (like runc).

The result is a clean list (:meth:`Emulator.exceptions`): whatever rule
matches last in the spec decides, and the v2 device program
(``v2/devices.py``) is generated from it, so v1 and v2 enforce the same set.
"""

from __future__ import annotations

from crid.oci.errors import InvalidArgument

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from crid.oci.runtime_spec import DeviceRule

# access bits, the values of BPF_DEVCG_ACC_* (the v2 program compares them as they are)
MKNOD, READ, WRITE = 1, 2, 4
ALL_ACCESS = MKNOD | READ | WRITE
_ACCESS = {"m": MKNOD, "r": READ, "w": WRITE}
WILDCARD = -1
_MAX_NUMBER = (1 << 31) - 1  # the program compares with a 32-bit signed immediate

# (type, major, minor) with -1 for "*"
Key = tuple[str, int, int]


def _char(major: int, minor: int) -> DeviceRule:
    return {"allow": True, "type": "c", "major": major, "minor": minor, "access": "rwm"}


# What every container gets after its own rules (runc's AllowedDevices):
# mknod of any node; null zero full random urandom tty console ptmx pts/* tun.
DEFAULT_ALLOW: tuple[DeviceRule, ...] = (
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
    *(_char(major, minor) for major, minor in ((1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0),
                                               (5, 1), (5, 2), (136, WILDCARD), (10, 200))),
)


def access_mask(text: str | None, where: str = "device rule") -> int:
    if not text:
        return ALL_ACCESS
    mask = 0
    for ch in text:
        if ch not in _ACCESS:
            raise InvalidArgument(f"{where}: access {text!r} is not made of r, w and m")
        mask |= _ACCESS[ch]
    return mask


def access_text(mask: int) -> str:
    return "".join(ch for ch in "rwm" if mask & _ACCESS[ch])


def _number(v: Any, what: str, where: str) -> int:
    if v is None:
        return WILDCARD
    if not isinstance(v, int) or isinstance(v, bool):
        raise InvalidArgument(f"{where}: {what} {v!r} is not a number")
    if v < 0:
        return WILDCARD
    if v > _MAX_NUMBER:
        raise InvalidArgument(f"{where}: {what} {v} is out of range")
    return v


def parse(r: Mapping[str, Any], where: str = "device rule") -> tuple[bool, Key, int]:
    """(allow, (type, major, minor), access) of one runtime-spec rule, checked:
    it comes from a bundle or an update as any JSON. Type ``a`` when it is
    missing, -1 for a wildcard number."""
    kind = r.get("type") or "a"
    if kind not in ("a", "b", "c"):
        raise InvalidArgument(f"{where}: type {kind!r} must be a, b or c")
    key = (kind, _number(r.get("major"), "major", where), _number(r.get("minor"), "minor", where))
    return bool(r.get("allow")), key, access_mask(r.get("access"), where)


class Emulator:
    """A v1 device cgroup's state: the default and its exceptions."""

    def __init__(self, default_allow: bool = False) -> None:
        self.default_allow = default_allow
        self.rules: dict[Key, int] = {}

    def apply(self, allow: bool, key: Key, access: int) -> None:
        if key[0] == "a":
            self.default_allow = allow
            self.rules = {}
        elif allow == self.default_allow:
            self._remove(key, access)
        else:
            self.rules[key] = self.rules.get(key, 0) | access

    def _remove(self, key: Key, access: int) -> None:
        kind, major, minor = key
        for wider in ((kind, WILDCARD, minor), (kind, major, WILDCARD),
                      (kind, WILDCARD, WILDCARD)):
            if wider != key and self.rules.get(wider, 0) & access:
                raise InvalidArgument(
                    f"device rule {format_rule(not self.default_allow, key, access)} "
                    f"would punch a hole in the wider rule "
                    f"{format_rule(not self.default_allow, wider, self.rules[wider])}, "
                    "which a device cgroup cannot do")
        left = self.rules.get(key, 0) & ~access
        if left:
            self.rules[key] = left
        else:
            self.rules.pop(key, None)

    def exceptions(self) -> list[tuple[Key, int]]:
        """The exceptions in a fixed order (by major, minor, type)."""
        return sorted(self.rules.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0]))

    def allows(self, kind: str, major: int, minor: int, access: int) -> bool:
        """What a v1 device cgroup answers for one access (the reference for tests)."""
        for (k, ma, mi), acc in self.rules.items():
            if k != kind or ma not in (WILDCARD, major) or mi not in (WILDCARD, minor):
                continue
            if self.default_allow and access & acc:  # any requested bit denied
                return False
            if not self.default_allow and not access & ~acc:  # all requested bits allowed
                return True
        return self.default_allow


def format_rule(allow: bool, key: Key, access: int) -> str:
    kind, major, minor = key
    num = ["*" if n == WILDCARD else str(n) for n in (major, minor)]
    return f"{'allow' if allow else 'deny'} {kind} {num[0]}:{num[1]} {access_text(access)}"


def effective(rules: list[DeviceRule] | None, *, defaults: bool = True) -> Emulator:
    """Deny everything, replay ``rules``, then allow what every container gets."""
    emu = Emulator(default_allow=False)
    for i, r in enumerate(rules or []):
        emu.apply(*parse(r, f"linux.resources.devices[{i}]"))
    if defaults:
        for r in DEFAULT_ALLOW:
            emu.apply(*parse(r))
    return emu
