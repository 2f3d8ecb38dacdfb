"""Token buckets: delivery waits for a token at pickup; ingest refuses with 429 when empty."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class TokenBucket:
    """`rate` requests per second on average, bursts up to `burst`; rate <= 0 means unlimited.

    Waiters are served in arrival order (one lock), so concurrent halves of a bisection share
    the destination's rate instead of racing past it.
    """

    def __init__(self, rate: float, burst: float | None = None,
                 monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.rate = rate
        self.burst = max(1.0, burst if burst is not None else rate)
        self._monotonic = monotonic
        self._sleep = sleep
        self._tokens = self.burst
        self._last = monotonic()
        self._lock = asyncio.Lock()

    def set_rate(self, rate: float) -> None:
        """Change the rate (and a burst that followed it) from now on: a delivery process's
        share of max_qps changes when another one starts or stops."""
        if rate == self.rate:
            return
        self._refill()  # the time until now earns tokens at the old rate
        if self.burst == max(1.0, self.rate):
            self.burst = max(1.0, rate)
        self.rate = rate
        self._tokens = min(self._tokens, self.burst)

    def _refill(self) -> None:
        now = self._monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now

    async def acquire(self) -> None:
        """Take one token, waiting for it if the bucket is empty."""
        if self.rate <= 0:
            return
        async with self._lock:
            self._refill()
            # The epsilon absorbs float rounding, which could otherwise leave the bucket a
            # hair short of a token forever.
            while self._tokens < 1.0 - 1e-9:
                await self._sleep((1.0 - self._tokens) / self.rate)
                self._refill()
            self._tokens = max(0.0, self._tokens - 1.0)

    def try_take(self, cost: float = 1.0) -> float:
        """Take `cost` tokens now and return 0, or take nothing and return the seconds to wait.

        A cost above the burst is charged as the full burst, so one large batch is never
        refused forever; it only needs a full bucket.
        """
        if self.rate <= 0:
            return 0.0
        self._refill()
        cost = min(cost, self.burst)
        if self._tokens >= cost - 1e-9:
            self._tokens = max(0.0, self._tokens - cost)
            return 0.0
        return (cost - self._tokens) / self.rate
