"""The burst log: one warning at the first failure, silence while it lasts, one line at the end."""

from __future__ import annotations

import logging

import pytest

from pixelrelay.bursts import Burst, BurstLog, Ended
from pixelrelay.errors import StoreUnavailable


def test_a_burst_is_reported_once_at_its_start_and_ends_with_its_count() -> None:
    burst = Burst()
    assert burst.succeed(0.0) is None  # nothing to end
    assert burst.fail(10.0) is True
    assert [burst.fail(t) for t in (11.0, 12.0, 13.0)] == [False, False, False]
    assert burst.succeed(15.5) == Ended(failures=4, seconds=5.5)
    assert burst.succeed(16.0) is None
    assert burst.fail(20.0) is True  # a new outage is reported again


def test_the_log_says_one_warning_without_traceback_and_one_recovery_line(
        caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    outage = BurstLog(logging.getLogger("pixelrelay.test_bursts"), "storage",
                      clock=lambda: now[0])
    caplog.set_level(logging.DEBUG, "pixelrelay.test_bursts")
    outage.recovered()
    assert caplog.records == []
    for _ in range(20):
        outage.failed(StoreUnavailable("read failed: server closed the connection unexpectedly"
                                       "\n\tThis probably means the server terminated abnormally"
                                       "\nDETAIL:  Key (email)=(ann@example.com)"))
        now[0] += 1.0
    assert outage.failing
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "storage unavailable: read failed: server closed the connection "
                          "unexpectedly (further failures are counted, not logged, until it "
                          "recovers)")]
    assert caplog.records[0].exc_info is None
    outage.recovered()
    outage.recovered()
    assert not outage.failing
    assert [(r.levelno, r.getMessage()) for r in caplog.records[1:]] == [
        (logging.INFO, "storage available again after 20.0 s; 20 failure(s) absorbed")]
