"""Delivery processes on one database split each destination's max_qps between the live ones,
counted by their heartbeats in the database, and keep it within its retention (each engine)."""

from __future__ import annotations

import dataclasses

from pixelrelay.clock import FakeClock
from pixelrelay.delivery.service import HEARTBEAT_TTL_S, RETAIN_BATCH, Delivery, rate_share
from pixelrelay.destinations import build_destination
from pixelrelay.model import DeliveryState, Event, Route
from pixelrelay.store import open_store
from pixelrelay.store.base import NewEvent, Store
from tests.conftest import FAST_DELIVERY, make_settings
from tests.support import await_for


def test_rate_share_splits_a_limit_and_keeps_unlimited() -> None:
    assert rate_share(500.0, 1) == 500.0
    assert rate_share(500.0, 4) == 125.0
    assert rate_share(500.0, 0) == 500.0  # never more than the whole limit
    assert rate_share(0.0, 3) == 0.0  # 0 = unlimited, for every process


async def test_each_delivery_process_throttles_at_its_share_of_max_qps(storage_url: str) -> None:
    settings = make_settings(storage_url, "http://127.0.0.1:9",
                             delivery=dataclasses.replace(FAST_DELIVERY, max_qps=300.0))
    destinations = [build_destination(d) for d in settings.destinations]
    clock = FakeClock()
    # Delivery processes elsewhere reach the same database through their own store.
    stores = [open_store(storage_url, recover_in_flight=False) for _ in range(3)]
    for s in stores:
        await s.open()
    mine, other, dies = (Delivery(settings, s, destinations, clock) for s in stores)

    def rate(d: Delivery) -> float:
        return d.workers["tiktok"].throttle.rate

    try:
        assert await mine.beat() == 1 and rate(mine) == 300.0  # alone: the whole limit
        assert await other.beat() == 2 and rate(other) == 150.0
        assert await mine.beat() == 2 and rate(mine) == 150.0  # re-read at its next beat

        await other.stop()  # a clean stop hands its share back at once
        assert await mine.beat() == 1 and rate(mine) == 300.0

        assert await dies.beat() == 2  # then killed: no leave, no more beats
        clock.advance(HEARTBEAT_TTL_S / 2)
        assert await mine.beat() == 2 and rate(mine) == 150.0  # not yet counted out
        clock.advance(HEARTBEAT_TTL_S)
        assert await mine.beat() == 1 and rate(mine) == 300.0
    finally:
        await mine.stop()
        await dies.stop()
        for s in stores:
            await s.close()


async def insert_filtered(store: Store, clock: FakeClock, event_ids: list[str]) -> None:
    """Purchases accepted now whose only route a filter excluded: finished, never sent."""
    filtered = Route("tiktok", "CompletePayment", DeliveryState.FILTERED, reason="a rule")
    await store.insert([NewEvent(Event("Purchase", i, int(clock.now()), received_at=clock.now()),
                                 (filtered,)) for i in event_ids], clock.now())


async def test_a_delivery_process_deletes_what_is_past_the_retention(storage_url: str) -> None:
    settings = make_settings(storage_url, "http://127.0.0.1:9")
    clock = FakeClock()
    store = open_store(storage_url)
    await store.open()
    await insert_filtered(store, clock, [f"old{i}" for i in range(RETAIN_BATCH + 5)])
    clock.advance(settings.storage.retention_s + 60)
    await insert_filtered(store, clock, ["new"])
    delivery = Delivery(settings, store, [build_destination(settings.destinations[0])], clock)
    try:
        await delivery.start()  # retention runs at once, then every RETAIN_EVERY_S
        await await_for(lambda: delivery.retained >= 2 * (RETAIN_BATCH + 5))
        assert await store.deliveries("old0") == [] and await store.deliveries("old1004") == []
        assert [v.state for v in await store.deliveries("new")] == [DeliveryState.FILTERED]
    finally:
        await delivery.stop()
        await store.close()


async def test_a_delivery_process_stores_the_diagnostics_minutes(storage_url: str) -> None:
    """The page reads stored minutes only if a delivery process computes them: at start and
    every ROLL_UP_EVERY_S, for the last 7 days from the first row on (the hour since the
    events came here); what the window says is unchanged."""
    settings = make_settings(storage_url, "http://127.0.0.1:9")
    clock = FakeClock()
    store = open_store(storage_url)
    await store.open()
    await insert_filtered(store, clock, ["p0", "p1", "p2"])
    clock.advance(3600)
    since = clock.now() - 86400
    scanned = await store.window(since, 3600)
    delivery = Delivery(settings, store, [build_destination(settings.destinations[0])], clock)
    try:
        await delivery.start()
        await await_for(lambda: delivery.rolled_up >= 58)  # the settled minutes of the hour
        assert await store.roll_up(clock.now()) == 0  # nothing left to compute
        assert await store.window(since, 3600) == scanned
        assert scanned.accepted == [("Purchase", 3)]
    finally:
        await delivery.stop()
        await store.close()
