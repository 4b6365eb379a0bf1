"""Structured logging: one JSON object per line on stderr, via structlog."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

Logger = Any  # structlog's bound loggers are dynamically typed


def configure(level: str) -> None:
    """Route every structlog logger to JSON lines on stderr at ``level``."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
            structlog.processors.format_exc_info,
            structlog.processors.EventRenamer("msg"),
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    # asyncio reports (a task's exception nobody read, debug mode's slow
    # callbacks) join the JSON log instead of plain lines on stderr.
    stdlib = logging.getLogger("asyncio")
    stdlib.handlers[:] = [_ToStructlog()]
    stdlib.setLevel(logging.WARNING)
    stdlib.propagate = False


class _ToStructlog(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        extra = {"exc_info": record.exc_info} if record.exc_info else {}
        get(record.name).log(record.levelno, record.getMessage(), **extra)


def get(name: str) -> Logger:
    return structlog.get_logger(component=name)
