"""Retry policy, pure: when to try again (exponential backoff, full jitter) and when to give up."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

from pixelrelay.config import DeliverySettings
from pixelrelay.destinations.base import OutcomeKind

MAX_EXPONENT = 62  # 2**62 seconds is far past any cap; keeps the float finite


def backoff(attempts: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Seconds to wait after `attempts` failed attempts: uniform in [0, min(cap, base * 2^(n-1))].

    Full jitter spreads the retries of many failed requests (and of many destinations hit by
    the same outage) over the window instead of sending them again in lockstep.
    """
    exponent = min(max(attempts - 1, 0), MAX_EXPONENT)
    ceiling = min(cap_s, base_s * 2.0**exponent)
    return rng.uniform(0.0, ceiling)


def request_backoff(streaks: Iterable[int], settings: DeliverySettings,
                    rng: random.Random) -> float:
    """One draw for a whole failed request, shared by its events.

    They come due together and are claimed together again, so the batch stays a batch; the
    jitter spreads requests, not the events of one. `streaks` are the events' own transient
    failures before this one (next_streak); the longest sets the exponent: a request is as
    doubtful as its most-failed member. A split never lengthens a streak, so the halves of a
    bisection wait no longer for having been split.
    """
    failures = max(streaks, default=0) + 1
    return backoff(failures, settings.retry_base_s, settings.retry_cap_s, rng)


def next_streak(kind: OutcomeKind, streak: int) -> int:
    """An event's retry streak once a request holding it got an answer of `kind`.

    Only a transient failure (5xx, 429, 40100, 50000, a timeout, no answer) adds one. Any
    verdict of TikTok ends the streak: delivered, refused alone, or refused with others (the
    request is split, which counts as no attempt): TikTok is answering, and what failed
    before is over.
    """
    return streak + 1 if kind is OutcomeKind.RETRY else 0


class RetryDraw:
    """The retry times of one claimed request, shared by every half of its bisection.

    Halves that fail transiently with the same streak come due together and travel together
    again, as the request they came from would have, instead of each drawing a wait of its
    own: one bad event then costs its batch-mates one backoff, not one per level.
    """

    def __init__(self, settings: DeliverySettings, rng: random.Random) -> None:
        self._settings = settings
        self._rng = rng
        self._due: dict[int, float] = {}  # longest streak -> when they retry

    def retry_at(self, streaks: Sequence[int], now: float) -> float:
        """When a failed request whose events have these streaks retries (request_backoff)."""
        longest = max(streaks, default=0)
        due = self._due.get(longest)
        if due is None:
            due = self._due[longest] = now + request_backoff(streaks, self._settings,
                                                             self._rng)
        return due


def give_up_reason(attempts: int, created_at: float, now: float,
                   settings: DeliverySettings) -> str | None:
    """'max_attempts' or 'expired' (older than max_age_hours: TikTok's dedup window), else None."""
    if attempts >= settings.max_attempts:
        return "max_attempts"
    if now - created_at >= settings.max_age_hours * 3600.0:
        return "expired"
    return None


class OutageWatch:
    """Tells a destination coming back from an outage apart from the successes that punctuate
    random failures, and holds the drain that follows.

    An outage is a run of retryable failures with no success for at least `min_s` (the first
    backoff window: by then a merely unlucky request would have been retried). Only the success
    that ends one lets the retries scheduled before it go at once; under a 30-50 % random
    failure rate successes keep coming, so backoffs stay in force and no storm starts. Times of
    failures and successes are when the request was sent, so a slow failure cannot outlive a
    later success. The drain lasts `drain_s` (retry_cap_s: by then every such retry is due).
    """

    def __init__(self, min_s: float, drain_s: float) -> None:
        self.min_s = min_s
        self.drain_s = drain_s
        self._up_at = float("-inf")  # when the latest successful request was sent
        self._down_since: float | None = None  # the first failure sent after it
        self._recovered_at: float | None = None

    def failed(self, sent_at: float) -> None:
        if sent_at > self._up_at and (self._down_since is None or sent_at < self._down_since):
            self._down_since = sent_at

    def succeeded(self, sent_at: float, now: float) -> float | None:
        """Seconds the destination was down if this success ends an outage (the drain starts
        `now`), else None."""
        if sent_at <= self._up_at:  # an older request answered late; a newer one already did
            return None
        self._up_at = sent_at
        down = self._down_since
        if down is None or down > sent_at:  # no failure before it (or only ones sent after it)
            return None
        self._down_since = None
        if sent_at - down < self.min_s:
            return None
        self._recovered_at = now
        return sent_at - down

    def drain_before(self, now: float) -> float | None:
        """While draining: retries scheduled before this time are due now."""
        if self._recovered_at is None or now >= self._recovered_at + self.drain_s:
            return None
        return self._recovered_at
