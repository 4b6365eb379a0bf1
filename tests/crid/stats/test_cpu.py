"""usage_nano_cores over the interval between samples."""

from __future__ import annotations

from crid.stats.cpu import CpuRates

S = 1_000_000_000


def test_the_first_sample_has_no_rate_then_cpu_time_over_wall_time() -> None:
    rates = CpuRates()
    assert rates.rate("c", 10 * S, 3 * S) is None
    assert rates.rate("c", 12 * S, 4 * S) == S // 2
    assert rates.rate("c", 13 * S, 6 * S) == 2 * S


def test_two_asks_at_once_get_the_same_rate() -> None:
    rates = CpuRates()
    rates.rate("c", 0, 0)
    assert rates.rate("c", S, S) == S
    assert rates.rate("c", S + 1000, S + 1) == S


def test_a_counter_going_backwards_starts_over_and_gone_keys_are_forgotten() -> None:
    rates = CpuRates()
    rates.rate("c", 0, 5 * S)
    assert rates.rate("c", S, S) is None
    assert rates.rate("c", 2 * S, 2 * S) == S
    rates.forget_except(set())
    assert rates.rate("c", 3 * S, 3 * S) is None
