"""Retry policy: exponential backoff with full jitter, bounded by attempts and by age."""

from __future__ import annotations

import random

from pixelrelay.config import DeliverySettings
from pixelrelay.delivery.retry import (
    OutageWatch,
    RetryDraw,
    backoff,
    give_up_reason,
    next_streak,
    request_backoff,
)
from pixelrelay.destinations.base import OutcomeKind


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


def test_only_a_transient_failure_lengthens_an_events_retry_streak() -> None:
    assert next_streak(OutcomeKind.RETRY, 0) == 1
    assert next_streak(OutcomeKind.RETRY, 4) == 5
    # Any verdict of TikTok ends it: a delivery, a refusal alone, or a refusal of a request
    # that is split (its halves start from 0, however often their events failed before).
    assert next_streak(OutcomeKind.DELIVERED, 4) == 0
    assert next_streak(OutcomeKind.PERMANENT, 4) == 0


def test_a_split_raises_no_backoff_and_a_transient_failure_does() -> None:
    s = DeliverySettings(retry_base_s=2.0, retry_cap_s=600.0)
    top = Extremes()
    streaks = [3, 3, 3]  # three transient failures, then TikTok refused the request
    halves = [next_streak(OutcomeKind.PERMANENT, n) for n in streaks]
    # A half failing now waits the first window, like events that never failed, however
    # deep the bisection: the split itself added nothing.
    assert request_backoff(halves, s, top) == 2.0
    assert request_backoff([next_streak(OutcomeKind.RETRY, n) for n in halves], s, top) == 4.0
    # Without the refusal the same events would have waited for their 4th failure.
    assert request_backoff(streaks, s, top) == 16.0


def test_a_request_backoff_follows_its_own_events_not_other_requests() -> None:
    s = DeliverySettings(retry_base_s=2.0, retry_cap_s=600.0)
    top = Extremes()
    fresh, failed_twice = [0, 0], [2, 2]
    assert request_backoff(fresh, s, top) == 2.0
    assert request_backoff(failed_twice, s, top) == 8.0
    assert request_backoff(fresh + failed_twice, s, top) == 8.0  # the most-failed member's


def test_halves_of_one_claim_that_fail_alike_retry_together() -> None:
    s = DeliverySettings(retry_base_s=2.0, retry_cap_s=600.0)
    draw = RetryDraw(s, random.Random(3))
    first = draw.retry_at([0, 0], 100.0)
    assert 100.0 <= first <= 102.0
    # Another half of the same bisection failing a moment later comes due with the first.
    assert draw.retry_at([0], 100.2) == first
    # Events that had failed more keep their longer window, drawn once for them too.
    longer = draw.retry_at([2, 0], 100.3)
    assert 100.3 <= longer <= 108.3 and draw.retry_at([2], 100.4) == longer


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
