"""Retry policy, pure: when to try again (exponential backoff, full jitter) and when to give up."""

from __future__ import annotations

import random

from pixelrelay.config import DeliverySettings

MAX_EXPONENT = 62  # 2**62 seconds is far past any cap; keeps the float finite


def backoff(attempts: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Seconds to wait after `attempts` failed attempts: uniform in [0, min(cap, base * 2^(n-1))].

    Full jitter spreads the retries of a whole failed batch (and of many destinations hit by
    the same outage) over the window instead of sending them again in lockstep.
    """
    exponent = min(max(attempts - 1, 0), MAX_EXPONENT)
    ceiling = min(cap_s, base_s * 2.0**exponent)
    return rng.uniform(0.0, ceiling)


def give_up_reason(attempts: int, created_at: float, now: float,
                   settings: DeliverySettings) -> str | None:
    """'max_attempts' or 'expired' (older than max_age_hours: TikTok's dedup window), else None."""
    if attempts >= settings.max_attempts:
        return "max_attempts"
    if now - created_at >= settings.max_age_hours * 3600.0:
        return "expired"
    return None
