"""Request validation shared by every call family.

``require(request, "config.metadata.name")`` raises ``InvalidArgument``
naming the dotted field when it is unset or empty, so every call reports a
missing field the same way.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message

from crid.errors import InvalidArgument


def field(message: Message, dotted: str) -> Any:
    """The value at ``dotted`` (None when a message on the way is unset)."""
    value: Any = message
    for name in dotted.split("."):
        if isinstance(value, Message):
            try:
                if not value.HasField(name):
                    return None
            except ValueError:  # a scalar or repeated field: no presence to ask about
                pass
        value = getattr(value, name)
    return value


def require(message: Message, *dotted: str) -> None:
    """Every field in ``dotted`` is set and non-empty."""
    for path in dotted:
        value = field(message, path)
        if value is None or (not isinstance(value, (bool, int, float)) and not value):
            raise InvalidArgument(f"{path} is required")

