"""CDI device names: ``vendor.com/class=name``, and where a request names them.

A container asks for CDI devices in two ways: ``ContainerConfig.CDI_devices``
(the CRI field kubelet fills from a device plugin's ``CDIDevices``) and the
older annotations ``cdi.k8s.io/<key>: vendor.com/class=a,vendor.com/class=b``.
Both hand over *fully qualified* names only; anything else is refused before
a spec file is even looked at.

The name rules are the CDI spec's: vendor and class start with a letter and
end with a letter or digit, with letters, digits, ``_``, ``-`` and ``.``
between; a device name may also start with a digit and contain ``:``.
"""

from __future__ import annotations

import re

from cri_api.v1 import api_pb2

from crid.errors import InvalidArgument

ANNOTATION_PREFIX = "cdi.k8s.io/"
# A DNS subdomain is at most 253 characters; nothing CDI names needs more.
MAX_NAME = 253

_VENDOR_OR_CLASS = re.compile(r"[A-Za-z]([A-Za-z0-9_.-]*[A-Za-z0-9])?")
_DEVICE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_.:-]*[A-Za-z0-9])?")


def vendor_or_class_problem(text: str) -> str | None:
    """Why ``text`` is no vendor or class name, or None when it is one."""
    return _problem(text, _VENDOR_OR_CLASS, "start with a letter, end with a letter or digit "
                    "and hold only letters, digits, '_', '-' and '.'")


def device_name_problem(text: str) -> str | None:
    """Why ``text`` is no device name (the part after ``=``), or None."""
    return _problem(text, _DEVICE, "start and end with a letter or digit and hold only "
                    "letters, digits, '_', '-', '.' and ':'")


def _problem(text: str, pattern: re.Pattern[str], rule: str) -> str | None:
    if len(text) > MAX_NAME:
        return f"{text[:40]!r}... is longer than {MAX_NAME} characters"
    if not pattern.fullmatch(text):
        return f"{text!r} must {rule}"
    return None


def split_kind(kind: str) -> tuple[str, str]:
    """``vendor.com/class`` → (vendor, class); ("", "") when there is no single '/'."""
    vendor, sep, cls = kind.partition("/")
    if not sep or "/" in cls:
        return "", ""
    return vendor, cls


def parse(name: str) -> tuple[str, str, str]:
    """A qualified device name → (vendor, class, device); InvalidArgument otherwise."""
    kind, sep, device = name.partition("=")
    vendor, cls = split_kind(kind)
    if not sep or not vendor or not cls or not device:
        raise InvalidArgument(
            f"CDI device {name!r} is not a fully qualified name (vendor.com/class=device)")
    for what, problem in (("vendor", vendor_or_class_problem(vendor)),
                          ("class", vendor_or_class_problem(cls)),
                          ("device name", device_name_problem(device))):
        if problem:
            raise InvalidArgument(f"CDI device {name!r}: {what} {problem}")
    return vendor, cls, device


def requested(config: api_pb2.ContainerConfig) -> list[str]:
    """The CDI devices a container asks for: ``CDI_devices`` first, then the
    ``cdi.k8s.io/*`` annotations by key; each once, in that order."""
    names = [d.name for d in config.CDI_devices]
    for key in sorted(config.annotations):
        if key.startswith(ANNOTATION_PREFIX):
            value = config.annotations[key]
            names += [n.strip() for n in value.split(",")] if value.strip() else [""]
    for name in names:
        parse(name)
    return list(dict.fromkeys(names))
