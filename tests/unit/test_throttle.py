"""Token bucket: bursts up to the rate, then paces requests at `rate` per second."""

from __future__ import annotations

import asyncio

from pixelrelay.delivery.throttle import TokenBucket


class FakeTime:
    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


async def test_burst_then_paced_at_rate() -> None:
    clock = FakeTime()
    bucket = TokenBucket(10.0, monotonic=clock.monotonic, sleep=clock.sleep)
    for _ in range(10):
        await bucket.acquire()
    assert clock.t == 0.0  # the burst passes at once
    for _ in range(20):
        await bucket.acquire()
    assert abs(clock.t - 2.0) < 1e-9  # 20 more at 10/s take 2 s


async def test_idle_time_refills_but_not_beyond_burst() -> None:
    clock = FakeTime()
    bucket = TokenBucket(5.0, burst=5.0, monotonic=clock.monotonic, sleep=clock.sleep)
    for _ in range(5):
        await bucket.acquire()
    clock.t += 100.0  # a long idle period
    for _ in range(5):
        await bucket.acquire()
    assert clock.sleeps == []
    await bucket.acquire()
    assert abs(clock.sleeps[-1] - 0.2) < 1e-9


async def test_concurrent_waiters_share_the_rate() -> None:
    clock = FakeTime()
    bucket = TokenBucket(4.0, burst=1.0, monotonic=clock.monotonic, sleep=clock.sleep)
    await asyncio.gather(*(bucket.acquire() for _ in range(9)))
    assert abs(clock.t - 2.0) < 1e-9  # 1 from the burst + 8 at 4/s


async def test_zero_rate_is_unlimited() -> None:
    clock = FakeTime()
    bucket = TokenBucket(0.0, monotonic=clock.monotonic, sleep=clock.sleep)
    for _ in range(1000):
        await bucket.acquire()
    assert clock.sleeps == []


def test_try_take_refuses_without_waiting_and_says_how_long() -> None:
    now = [0.0]
    bucket = TokenBucket(10.0, monotonic=lambda: now[0])
    assert bucket.try_take(6) == 0.0
    assert bucket.try_take(4) == 0.0
    assert bucket.try_take(1) == 0.1  # empty: one token needs a tenth of a second
    now[0] += 0.5
    assert bucket.try_take(5) == 0.0  # refilled at 10/s
    assert bucket.try_take(1) > 0


def test_try_take_charges_a_cost_above_the_burst_as_a_full_bucket() -> None:
    now = [0.0]
    bucket = TokenBucket(10.0, monotonic=lambda: now[0])
    assert bucket.try_take(500) == 0.0  # one large batch passes on a full bucket
    assert bucket.try_take(500) == 1.0  # and the next waits for the bucket to refill
    assert TokenBucket(0).try_take(10**6) == 0.0  # unlimited


async def test_a_new_rate_paces_from_then_on_and_the_burst_follows_it() -> None:
    clock = FakeTime()
    bucket = TokenBucket(10.0, monotonic=clock.monotonic, sleep=clock.sleep)
    for _ in range(10):
        await bucket.acquire()  # the burst of 10
    bucket.set_rate(5.0)  # another delivery process joined: half each
    assert bucket.burst == 5.0
    for _ in range(10):
        await bucket.acquire()
    assert abs(clock.t - 2.0) < 1e-9  # 10 at 5/s
    clock.t += 100.0
    bucket.set_rate(10.0)  # it left: the full rate, the idle time refilled at the old one
    for _ in range(5):
        await bucket.acquire()
    assert abs(clock.t - 102.0) < 1e-9
    await bucket.acquire()
    assert abs(clock.t - 102.1) < 1e-9  # the bucket held 5, the 6th waits at 10/s
