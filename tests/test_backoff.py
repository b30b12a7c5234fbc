"""Restart delays: full jitter under an exponential ceiling, reset, flapping."""

import random

import pytest

from supervisor.backoff import Backoff, BackoffPolicy


def seeded(policy: BackoffPolicy | None = None) -> Backoff:
    return Backoff(policy or BackoffPolicy(), _rng=random.Random(7))


def test_delays_stay_under_a_doubling_ceiling_capped_at_60s() -> None:
    backoff = seeded(BackoffPolicy(flap_count=1000))
    for attempt in range(1, 12):
        delay = backoff.failed(now=attempt * 100.0)
        assert 0 <= delay <= min(60.0, 2 ** (attempt - 1))
    assert backoff.attempt == 11


def test_full_jitter_spreads_delays() -> None:
    delays = {round(Backoff(_rng=random.Random(seed)).failed(0.0), 3) for seed in range(20)}
    assert len(delays) > 10


def test_uptime_under_a_minute_keeps_the_attempt_count() -> None:
    backoff = seeded()
    backoff.failed(0.0)
    backoff.connected_for(59.0)
    assert backoff.attempt == 1


def test_a_minute_connected_resets_attempts_and_flapping() -> None:
    backoff = seeded()
    for t in range(5):
        backoff.failed(float(t), after_connecting=True)
    assert backoff.flapping
    backoff.connected_for(60.0)
    assert backoff.attempt == 0
    assert not backoff.flapping


def test_five_crashes_in_a_minute_hold_the_bot_at_the_cap() -> None:
    backoff = seeded()
    delays = [backoff.failed(float(t), after_connecting=True) for t in range(5)]
    assert backoff.flapping
    assert delays[-1] == pytest.approx(60.0)


def test_crashes_spread_beyond_the_window_are_not_flapping() -> None:
    backoff = seeded()
    for t in range(5):
        backoff.failed(t * 61.0, after_connecting=True)
    assert not backoff.flapping


class Highest(random.Random):
    """Full jitter at its upper bound, so the ceiling itself is visible."""

    def uniform(self, a: float, b: float) -> float:
        return b


T0 = 86_400.0
"""A realistic time.monotonic() value: the window arithmetic must hold far from zero."""


def test_the_ceiling_doubles_from_base_up_to_the_cap() -> None:
    backoff = Backoff(BackoffPolicy(base=1.0, cap=60.0, flap_count=1000), _rng=Highest())
    delays = [backoff.failed(T0 + attempt * 100.0) for attempt in range(9)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]


def test_five_crashes_within_the_window_flap_far_from_time_zero() -> None:
    backoff = seeded()
    for t in range(4):
        backoff.failed(T0 + t, after_connecting=True)
        assert not backoff.flapping
    assert backoff.failed(T0 + 4, after_connecting=True) == pytest.approx(60.0)
    assert backoff.flapping


def test_a_crash_exactly_one_window_old_still_counts() -> None:
    backoff = seeded()
    for t in (0.0, 15.0, 30.0, 45.0, 60.0):
        backoff.failed(T0 + t, after_connecting=True)
    assert backoff.flapping
    backoff.failed(T0 + 60.5, after_connecting=True)
    assert backoff.flapping, "the crashes at 15..60.5 are five within 60 s"
    fresh = seeded()
    for t in (0.0, 15.0, 30.0, 45.0, 60.1):
        fresh.failed(T0 + t, after_connecting=True)
    assert not fresh.flapping


def test_failures_to_connect_never_flap_they_only_back_off() -> None:
    backoff = seeded()
    for t in range(20):
        backoff.failed(t * 0.1)
    assert not backoff.flapping


def test_attempt_5000_still_gives_a_capped_delay() -> None:
    """The old ceiling computed base * 2 ** 4999 before capping: OverflowError."""
    backoff = seeded()
    for n in range(5000):
        delay = backoff.failed(n * 60.0)
        assert 0 <= delay <= 60.0
    assert backoff.attempt == 5000


def test_a_short_outage_costs_a_wait_no_longer_than_the_outage_so_far() -> None:
    backoff = seeded(BackoffPolicy())
    now = 0.0
    while now < 14.0:
        delay = backoff.failed(now)
        assert delay <= max(1.0, now) + 1e-9
        now += delay + 0.2
    backoff.connected()
    backoff.failed(200.0)
    assert backoff.ceiling(200.0) == 1.0, "a new outage starts from the base again"


def test_after_a_reset_the_next_outage_starts_from_base() -> None:
    backoff = Backoff(BackoffPolicy(base=1.0, cap=60.0), _rng=Highest())
    for t in range(6):
        backoff.failed(T0 + t * 30.0)
    backoff.connected_for(60.0)
    assert backoff.attempt == 0
    assert backoff.failed(T0 + 1000.0) == 1.0, "a fresh outage: attempt 1, base"


def test_the_first_death_after_connecting_restarts_at_once_the_next_ones_back_off() -> None:
    backoff = seeded()
    assert backoff.failed(0.0, after_connecting=True) == 0.0
    second = [Backoff(_rng=random.Random(seed)) for seed in range(20)]
    for fresh in second:
        fresh.failed(0.0, after_connecting=True)
    delays = {round(fresh.failed(1.0, after_connecting=True), 3) for fresh in second}
    assert len(delays) > 10 and all(0 <= d <= 2.0 for d in delays)
    backoff.connected_for(60.0)
    assert backoff.failed(100.0, after_connecting=True) == 0.0, "after proven uptime: news again"


def test_a_first_failure_to_connect_still_waits_its_jitter() -> None:
    delays = {round(Backoff(_rng=random.Random(seed)).failed(0.0), 3) for seed in range(20)}
    assert len(delays) > 10 and all(0 <= d <= 1.0 for d in delays)
