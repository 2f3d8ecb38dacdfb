"""Retries keep batches whole, through the emulator's own fault injection over real HTTP.

Scaled down from `python -m bench.retry_storm` (100k random-fault events, 200k queued during the
outage, batches of 1,000) to 10,000 events in batches of 500: the same 20 batches.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from pixelrelay.clock import Clock, FakeClock, SystemClock
from pixelrelay.config import DeliverySettings
from pixelrelay.delivery.sender import Sender
from pixelrelay.delivery.worker import DeliveryWorker
from pixelrelay.destinations import build_destination
from pixelrelay.ingest import Ingestor
from pixelrelay.model import DeliveryState
from pixelrelay.store import open_store
from pixelrelay.store.base import Store
from tests.conftest import emu_state, make_settings
from tests.support import ServerThread, await_for

BATCH = 500


def event(i: int, now: float) -> dict[str, object]:
    return {"event": "AddToCart", "event_id": f"r{i}", "timestamp": int(now),
            "user": {"email": f"c{i}@example.com", "ip": "203.0.113.42",
                     "user_agent": "Mozilla/5.0"},
            "properties": {"value": 19.9, "currency": "EUR",
                           "contents": [{"content_id": f"SKU-{i % 97}", "price": 19.9}]}}


@dataclass
class Pipe:
    """Ingest -> the store -> one delivery worker -> the emulator, on a clock of the test's
    choice."""

    store: Store
    ingestor: Ingestor
    worker: DeliveryWorker
    emu: Any
    clock: Clock

    async def add(self, first: int, count: int) -> None:
        for start in range(first, first + count, 500):
            chunk = [event(i, self.clock.now()) for i in range(start,
                                                               min(first + count, start + 500))]
            result = await self.ingestor.accept(chunk)
            assert result.accepted == len(chunk), result.rejected[:1]

    async def drain(self) -> None:
        """Cycle until nothing is due, without moving the clock."""
        while await self.worker.run_once():
            pass

    def assert_each_event_arrived_once(self, n: int) -> None:
        ids = [e["event_id"] for e in self.emu.events]
        assert len(ids) == n and set(ids) == {f"r{i}" for i in range(n)}
        assert self.emu.duplicates == 0  # nothing was sent again after TikTok had taken it


PipeFactory = Callable[[DeliverySettings, Clock], Awaitable[Pipe]]


@pytest.fixture
async def make_pipe(storage_url: str, emulator: ServerThread) -> AsyncIterator[PipeFactory]:
    opened: list[tuple[Store, Sender]] = []

    async def make(delivery: DeliverySettings, clock: Clock) -> Pipe:
        settings = make_settings(storage_url, emulator.url, delivery=delivery,
                                 batch_size=BATCH)
        store = open_store(storage_url)
        await store.open()
        sender = Sender(delivery)
        opened.append((store, sender))
        destination = build_destination(settings.destinations[0])
        worker = DeliveryWorker(store, destination, sender, delivery, clock,
                                settings.destinations[0].access_token.fingerprint())
        return Pipe(store, Ingestor(settings, store, [destination], clock), worker,
                    emu_state(emulator), clock)

    yield make
    for store, sender in opened:
        await sender.close()
        await store.close()


# Each request fails with 5xx, 40100 or 50000 at 15 % each: 1 - 0.85^3 = 38.6 % in all.
RANDOM_FAULTS = {"http_5xx_rate": 0.15, "code_40100_rate": 0.15, "code_50000_rate": 0.15}
FAILURE_RATE = 1 - 0.85**3


async def test_random_failures_cost_about_n_over_batch_over_success_rate(
        make_pipe: PipeFactory) -> None:
    n = 10_000
    # Production backoff scaled down 40x (2 s -> 0.05 s, 10 min -> 15 s) so the suite is quick.
    delivery = DeliverySettings(flush_interval_s=0.02, retry_base_s=0.05, retry_cap_s=15.0,
                                max_attempts=50, request_timeout_s=10.0, max_qps=1000.0)
    pipe = await make_pipe(delivery, SystemClock())
    await pipe.add(0, n)  # queued before delivery starts: the batches are full from the start
    pipe.emu.faults.update(RANDOM_FAULTS)
    stop = asyncio.Event()
    task = asyncio.create_task(pipe.worker.run(stop))
    try:
        await await_for(lambda: pipe.emu.stats()["events"] >= n, timeout=120)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    requests = pipe.emu.requests
    ideal = n / BATCH / (1 - FAILURE_RATE)  # 32.6 requests
    assert len(requests) <= 1.5 * ideal, [r.n_events for r in requests]
    assert sum(r.code != 0 for r in requests) >= 5  # the faults really happened
    pipe.assert_each_event_arrived_once(n)


async def test_an_outage_backlog_drains_in_full_batches_at_once(make_pipe: PipeFactory) -> None:
    """Ten minutes of HTTP 503 on a fake clock (production backoff: 2 s doubling to 10 min),
    10,000 events arriving meanwhile; then TikTok is back."""
    n, step_s = 10_000, 10.0
    clock = FakeClock(time.time())
    pipe = await make_pipe(DeliverySettings(flush_interval_s=0.0, max_qps=1000.0), clock)
    pipe.emu.faults.update({"http_5xx_rate": 1.0})
    steps = int(600 / step_s)
    for step in range(steps):
        first = step * n // steps
        await pipe.add(first, (step + 1) * n // steps - first)
        await pipe.drain()
        clock.advance(step_s)
    failed = len(pipe.emu.requests)
    assert pipe.emu.stats()["events"] == 0 and failed > steps  # every attempt failed

    pipe.emu.faults.update({"http_5xx_rate": 0.0})
    next_due = await pipe.store.next_due("tiktok")
    assert next_due is not None
    clock.advance(max(0.0, next_due - clock.now()))  # the earliest retry comes due
    await pipe.drain()  # the clock stands still: nothing may wait for its backoff
    drained = pipe.emu.requests[failed:]
    assert len(drained) <= 1.1 * n / BATCH, [r.n_events for r in drained]
    pipe.assert_each_event_arrived_once(n)


async def test_a_refused_event_costs_its_batch_mates_no_attempts_over_real_http(
        make_pipe: PipeFactory) -> None:
    """100 good events and one TikTok refuses (40002), TikTok failing half of all requests;
    production backoff on a fake clock moved to each next retry."""
    n, bad = 100, "r-bad"
    clock = FakeClock(time.time())
    pipe = await make_pipe(DeliverySettings(flush_interval_s=0.0, max_qps=1000.0), clock)
    await pipe.add(0, n // 2)
    refused = {**event(0, clock.now()), "event": "Contact", "event_id": bad}
    assert (await pipe.ingestor.accept([refused])).accepted == 1
    await pipe.add(n // 2, n - n // 2)
    pipe.emu.faults.update({"http_5xx_rate": 1.0})  # two failures each before any answer
    for _ in range(2):
        await pipe.drain()
        clock.advance(max(0.0, (await pipe.store.next_due("tiktok") or 0.0) - clock.now()))
    # Shares of all requests: 10 % HTTP 503, 15 % 40100, 25 % 50000 (rolled in that order).
    pipe.emu.faults.update({"http_5xx_rate": 0.10, "code_40100_rate": 0.15 / 0.90,
                            "code_50000_rate": 0.25 / 0.75, "reject_event": "Contact"})
    for _ in range(200):
        await pipe.drain()
        due = await pipe.store.next_due("tiktok")
        if due is None:
            break
        clock.advance(max(0.0, due - clock.now()))
    pipe.assert_each_event_arrived_once(n)

    (view,) = await pipe.store.deliveries(bad)
    assert (view.state, view.dead_reason, view.last_code) == (DeliveryState.DEAD, "rejected",
                                                              40002)
    assert view.last_message == "data.0.event: Invalid value (rejected by fault)"
    splits = retries = 0
    for i in range(n):
        (trace,) = await pipe.store.trace(f"r{i}")
        failed = [a for a in trace.log if a.outcome == "retry"]
        # Attempts are the transient failures and the request that delivered: no split.
        assert (trace.state, trace.attempts) == ("delivered", len(failed) + 1), trace.log
        for a, after, later in zip(trace.log[:-1], trace.log[1:], [*trace.log[2:], None],
                                   strict=True):
            if a.outcome != "permanent":
                continue
            # Split at once: the event's half went out in the same instant, unwaited.
            assert after.at == a.at and after.batch_size in (a.batch_size // 2,
                                                             a.batch_size - a.batch_size // 2)
            if after.outcome == "retry" and later is not None:
                # The half failed: TikTok had just answered, so it waits the first backoff
                # window, not that of the events' earlier failures, nor one per split level.
                assert later.at - after.at <= pipe.worker.settings.retry_base_s
        splits += sum(a.outcome == "permanent" for a in trace.log)
        retries += len(failed)
    assert splits >= n and retries > 0  # every good event was bisected; some halves failed
