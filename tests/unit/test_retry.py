"""Retry policy: exponential backoff with full jitter, bounded by attempts and by age."""

from __future__ import annotations

import random

from pixelrelay.config import DeliverySettings
from pixelrelay.delivery.retry import OutageWatch, backoff, give_up_reason, request_backoff


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


def test_one_draw_per_request_follows_its_most_failed_event() -> None:
    s = DeliverySettings(retry_base_s=2.0, retry_cap_s=600.0)
    top = Extremes()
    assert request_backoff([0, 0, 0], s, top) == 2.0  # first failure: within [0, base]
    assert request_backoff([0, 4, 1], s, top) == 32.0  # the 5th failure of the most-failed
    assert request_backoff([], s, top) == 2.0
    assert request_backoff([40], s, top) == 600.0


# -- OutageWatch: times are when each request was sent ---------------------------------------

def test_successes_amid_random_failures_are_no_recovery() -> None:
    watch = OutageWatch(min_s=2.0, drain_s=600.0)
    for t in range(100):  # every other request fails, a success at most 1 s after a failure
        if t % 2:
            watch.failed(float(t) / 2)
        else:
            assert watch.succeeded(float(t) / 2, float(t) / 2) is None
    assert watch.drain_before(50.0) is None


def test_the_success_that_ends_an_outage_starts_a_drain_of_older_retries() -> None:
    watch = OutageWatch(min_s=2.0, drain_s=600.0)
    for t in (10.0, 11.0, 15.0, 70.0):
        watch.failed(t)
    assert watch.succeeded(80.0, 80.5) == 70.0  # down since the first failure at 10 s
    assert watch.drain_before(81.0) == 80.5  # retries scheduled before the recovery are due
    assert watch.drain_before(80.5 + 600.0) is None  # by then every such retry came due anyway
    assert watch.succeeded(90.0, 90.0) is None  # later successes start nothing new


def test_a_late_answer_or_a_failure_sent_after_a_success_does_not_mislead() -> None:
    watch = OutageWatch(min_s=2.0, drain_s=600.0)
    watch.succeeded(10.0, 10.1)
    watch.failed(5.0)  # sent before the success at 10 s: TikTok was up after it
    assert watch.succeeded(20.0, 20.0) is None
    watch.failed(30.0)
    assert watch.succeeded(15.0, 31.0) is None  # sent before the last success: old news
    assert watch.succeeded(25.0, 31.0) is None  # sent before the failure: says nothing of it
    assert watch.succeeded(35.0, 35.0) == 5.0  # the failure at 30 s still counts
