"""The interceptor's one span per call, unary and streaming alike: crid's errors
keep their code, anything else is INTERNAL, and every call is counted once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from crid import errors
from crid.clock import Clock
from crid.interceptor import Aborted, CallInterceptor, Unary
from crid.metrics import Metrics


def _count(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def _ok(_request: Any) -> str:
    return "done"


async def _missing(_request: Any) -> str:
    raise errors.NotFound("no such pod")


async def _broken(_request: Any) -> str:
    raise ValueError("bug")


async def _two_then_fail(_request: Any) -> AsyncIterator[int]:
    yield 1
    yield 2
    raise errors.Unavailable("gone away")


def test_unary_calls_keep_crid_codes_and_hide_the_rest() -> None:
    metrics = Metrics()
    interceptor = CallInterceptor(metrics, Clock())

    def call(method: str, behavior: Unary) -> Any:
        async def run() -> Any:
            return await interceptor.unary(method, behavior)(None)
        return asyncio.run(run())

    assert call("/s/Ok", _ok) == "done"
    with pytest.raises(Aborted) as missing:
        call("/s/Missing", _missing)
    assert (missing.value.code, missing.value.message) == ("NOT_FOUND", "no such pod")
    with pytest.raises(Aborted) as broken:
        call("/s/Broken", _broken)
    assert broken.value.code == "INTERNAL"
    assert "internal error in Broken" in broken.value.message
    assert broken.value.__suppress_context__
    for operation in ("Ok", "Missing", "Broken"):
        assert _count(metrics, "crid_operations_total", operation=operation) == 1
    assert _count(metrics, "crid_operations_errors_total", operation="Ok", code="OK") == 0
    assert _count(metrics, "crid_operations_errors_total",
                  operation="Missing", code="NOT_FOUND") == 1
    assert _count(metrics, "crid_operations_errors_total",
                  operation="Broken", code="INTERNAL") == 1


def test_a_stream_that_fails_midway_ends_aborted_and_is_counted_once() -> None:
    metrics = Metrics()
    interceptor = CallInterceptor(metrics, Clock())
    got: list[int] = []

    async def consume() -> None:
        async for item in interceptor.streaming("/s/Stream", _two_then_fail)(None):
            got.append(item)

    with pytest.raises(Aborted) as failed:
        asyncio.run(consume())
    assert got == [1, 2] and failed.value.code == "UNAVAILABLE"
    assert _count(metrics, "crid_operations_total", operation="Stream") == 1
    assert _count(metrics, "crid_operations_errors_total",
                  operation="Stream", code="UNAVAILABLE") == 1
