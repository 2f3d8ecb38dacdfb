"""A run of the same failure logged as one burst: a warning when it starts, a line when it ends.

A database outage fails every request and every delivery cycle; a line (or a traceback) for
each buries the one that says what happened under thousands of copies. `Burst` decides what
to say and holds no I/O; `BurstLog` says it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from pixelrelay.records import record


@record
class Ended:
    """A burst that a success just ended."""

    failures: int
    seconds: float


class Burst:
    """Failures counted from the first one after a success until the next success."""

    __slots__ = ("failures", "started_at")

    def __init__(self) -> None:
        self.failures = 0
        self.started_at = 0.0

    def fail(self, now: float) -> bool:
        """Count a failure; True when it starts a burst (the one failure worth reporting)."""
        self.failures += 1
        if self.failures == 1:
            self.started_at = now
            return True
        return False

    def succeed(self, now: float) -> Ended | None:
        """A success: the burst it ends, if one was running."""
        if not self.failures:
            return None
        ended = Ended(self.failures, max(0.0, now - self.started_at))
        self.failures = 0
        return ended


class BurstLog:
    """Logs the bursts of one kind of failure (`what`: "storage", "delivery of tiktok"):
    one WARNING without traceback at the first failure, one INFO at recovery with how many
    failures it absorbed."""

    def __init__(self, logger: logging.Logger, what: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.log = logger
        self.what = what
        self.clock = clock  # durations only: a monotonic clock, not the gateway's Clock
        self.burst = Burst()

    @property
    def failing(self) -> bool:
        return self.burst.failures > 0

    def failed(self, exc: BaseException) -> None:
        if self.burst.fail(self.clock()):
            self.log.warning("%s unavailable: %s (further failures are counted, not logged, "
                             "until it recovers)", self.what, first_line(exc))

    def recovered(self) -> None:
        if not self.burst.failures:  # the common case, on every request: one comparison
            return
        ended = self.burst.succeed(self.clock())
        if ended is not None:
            self.log.info("%s available again after %.1f s; %d failure(s) absorbed",
                          self.what, ended.seconds, ended.failures)


def first_line(exc: BaseException) -> str:
    """The exception's first line: a driver's message goes on with hints and DETAIL lines,
    which may quote values."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else "") or type(exc).__name__
