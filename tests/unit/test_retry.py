"""Retry policy: exponential backoff with full jitter, bounded by attempts and by age."""

from __future__ import annotations

import random

from pixelrelay.config import DeliverySettings
from pixelrelay.delivery.retry import backoff, give_up_reason


class Extremes(random.Random):
    """Returns the top of the range, exposing the backoff ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_ceiling_doubles_from_base_and_stops_at_cap() -> None:
    top = Extremes()
    assert [backoff(n, 2.0, 600.0, top) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 16.0]
    assert backoff(9, 2.0, 600.0, top) == 512.0
    assert backoff(10, 2.0, 600.0, top) == 600.0
    assert backoff(10_000, 2.0, 600.0, top) == 600.0  # no overflow for absurd counts


def test_full_jitter_stays_within_zero_and_ceiling_and_spreads() -> None:
    rng = random.Random(7)
    delays = [backoff(5, 2.0, 600.0, rng) for _ in range(2000)]
    assert all(0.0 <= d <= 32.0 for d in delays)
    assert min(delays) < 4.0 and max(delays) > 28.0  # spread over the window, not lockstep


def test_give_up_by_attempts_then_by_age() -> None:
    s = DeliverySettings(max_attempts=3, max_age_hours=48.0)
    assert give_up_reason(2, 0.0, 100.0, s) is None
    assert give_up_reason(3, 0.0, 100.0, s) == "max_attempts"
    assert give_up_reason(1, 0.0, 48 * 3600.0 - 1, s) is None
    assert give_up_reason(1, 0.0, 48 * 3600.0, s) == "expired"
