"""The failed-credential budget: burst, refill, one report per burst, keys per address."""

from __future__ import annotations

import pytest

from pixelrelay.sources.credentials import ADMIN, SHOPIFY, SITE, SOURCE, credential_kind
from pixelrelay.web.credential_guard import FailedCredentials, limit_key


class Ticks:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_burst_then_one_try_per_refill() -> None:
    ticks = Ticks()
    limiter = FailedCredentials(burst=3, refill_s=6.0, monotonic=ticks)
    reports = [limiter.failed(ADMIN, "203.0.113.1") for _ in range(3)]
    assert reports == [False, False, True]  # the failure that used it up is reported
    assert limiter.retry_after(ADMIN, "203.0.113.1") == pytest.approx(6.0)
    ticks.t += 4.5
    assert limiter.retry_after(ADMIN, "203.0.113.1") == pytest.approx(1.5)
    ticks.t += 1.5
    assert limiter.retry_after(ADMIN, "203.0.113.1") == 0.0
    # A steady guesser at the refill rate is never reported again ...
    assert limiter.failed(ADMIN, "203.0.113.1") is False
    ticks.t += 6.0
    assert limiter.failed(ADMIN, "203.0.113.1") is False
    # ... until it paused long enough to have its whole burst back.
    ticks.t += 3 * 6.0
    assert limiter.retry_after(ADMIN, "203.0.113.1") == 0.0
    assert [limiter.failed(ADMIN, "203.0.113.1") for _ in range(3)] == [False, False, True]


def test_budgets_are_per_kind_and_address_and_ipv6_per_64() -> None:
    limiter = FailedCredentials(burst=1, monotonic=Ticks())
    limiter.failed(SOURCE, "2001:db8:1:2::1")
    assert limiter.retry_after(SOURCE, "2001:db8:1:2:ffff::9") > 0  # same /64
    assert limiter.retry_after(SOURCE, "2001:db8:1:3::1") == 0.0
    assert limiter.retry_after(ADMIN, "2001:db8:1:2::1") == 0.0
    assert limit_key("203.0.113.9") == "203.0.113.9"
    assert limit_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert limit_key("unknown") == "unknown"


def test_memory_is_bounded_by_forgetting_the_least_recent() -> None:
    limiter = FailedCredentials(burst=1, monotonic=Ticks(), max_addresses=2)
    for host in ("a", "b", "c"):
        limiter.failed(SITE, host)
    assert limiter.retry_after(SITE, "a") == 0.0
    assert limiter.retry_after(SITE, "b") > 0 and limiter.retry_after(SITE, "c") > 0


@pytest.mark.parametrize(("method", "path", "kind"), [
    ("POST", "/v1/events", SOURCE),
    ("POST", "/open_api/v1.3/event/track/", SOURCE),
    ("POST", "/v1/collect", SITE),
    ("OPTIONS", "/v1/collect", None),
    ("POST", "/v1/webhooks/shopify/shop", SHOPIFY),
    ("POST", "/login", ADMIN),
    ("GET", "/login", None),
    ("GET", "/", ADMIN),
    ("GET", "/v1/diagnostics", ADMIN),
    ("GET", "/v1/deliveries", ADMIN),
    ("POST", "/v1/destinations/tiktok/resume", ADMIN),
    ("GET", "/v1/events/e1/trace", ADMIN),
    ("GET", "/metrics", None),
    ("GET", "/tag.js", None),
    ("GET", "/healthz", None),
    ("POST", "/logout", None),
])
def test_which_secret_a_path_takes(method: str, path: str, kind: str | None) -> None:
    assert credential_kind(method, path) == kind
