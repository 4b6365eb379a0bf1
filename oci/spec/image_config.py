"""The parts of an OCI image config that shape a container's process.

Parsed from the image config JSON (``{"config": {"User": ..., "Env": ...}}``)
as the image store keeps it; fields that are absent stay empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from crid.errors import InvalidArgument


def _strings(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"image config: {key} must be a list of strings")
    return tuple(value)


def _string(value: Any, key: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidArgument(f"image config: {key} must be a string")
    return value


@dataclass(frozen=True)
class ImageConfig:
    user: str = ""
    env: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    working_dir: str = ""
    stop_signal: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> ImageConfig:
        """From a whole image config document (the ``config`` key is read)."""
        config = document.get("config") or {}
        if not isinstance(config, Mapping):
            raise InvalidArgument("image config: config must be an object")
        labels = config.get("Labels") or {}
        if not isinstance(labels, Mapping):
            raise InvalidArgument("image config: Labels must be an object")
        return cls(
            user=_string(config.get("User"), "User"),
            env=_strings(config.get("Env"), "Env"),
            entrypoint=_strings(config.get("Entrypoint"), "Entrypoint"),
            cmd=_strings(config.get("Cmd"), "Cmd"),
            working_dir=_string(config.get("WorkingDir"), "WorkingDir"),
            stop_signal=_string(config.get("StopSignal"), "StopSignal"),
            labels={str(k): str(v) for k, v in labels.items()},
        )
