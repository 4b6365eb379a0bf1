"""Flow-control window arithmetic."""

from __future__ import annotations

import pytest

from crid.streaming.spdy.flow import (
    DEFAULT_WINDOW,
    MAX_WINDOW,
    FlowControlError,
    ReceiveWindow,
    SendWindow,
)


def test_send_window_grants_at_most_what_is_left() -> None:
    window = SendWindow(100)
    assert window.take(60) == 60
    assert window.take(60) == 40
    assert window.take(1) == 0
    window.grow(10)
    assert window.take(60) == 10


def test_send_window_can_shrink_below_zero_on_a_settings_change() -> None:
    window = SendWindow(100)
    window.take(80)
    window.grow(-50)  # INITIAL_WINDOW_SIZE lowered by 50
    assert window.available == -30
    assert window.take(10) == 0
    window.grow(40)
    assert window.take(100) == 10


def test_send_window_cannot_exceed_2_to_the_31() -> None:
    window = SendWindow(MAX_WINDOW - 5)
    window.grow(5)
    with pytest.raises(FlowControlError):
        window.grow(1)


def test_receive_window_returns_credit_per_half_window() -> None:
    window = ReceiveWindow(DEFAULT_WINDOW)
    assert window.received(40_000)
    assert window.consumed(20_000) == 0
    assert window.consumed(12_768) == 32_768  # half the window consumed: give it back
    assert window.available == DEFAULT_WINDOW - 40_000 + 32_768
    assert window.consumed(7_232) == 0


def test_receive_window_reports_an_overrun() -> None:
    window = ReceiveWindow(100)
    assert window.received(100)
    assert not window.received(1)


def test_receive_window_resized_keeps_what_is_in_flight() -> None:
    window = ReceiveWindow(DEFAULT_WINDOW)
    assert window.received(60_000)
    window.resize(4 * DEFAULT_WINDOW)
    assert window.available == 4 * DEFAULT_WINDOW - 60_000
    assert window.received(4 * DEFAULT_WINDOW - 60_000)
    assert not window.received(1)
    # credit now comes back per half of the new size
    assert window.consumed(DEFAULT_WINDOW) == 0
    assert window.consumed(DEFAULT_WINDOW) == 2 * DEFAULT_WINDOW
