"""Retention on every store: finished deliveries, their events and keys, and attempts older
than the retention go in small batches; what is pending or recent stays."""

from __future__ import annotations

from pixelrelay.model import DeliveryState, Event, Route
from pixelrelay.store.base import AttemptRecord, Finished, InsertOutcome, NewEvent, Store
from pixelrelay.store.rows import RecentSearch

DAY = 86400.0
T0 = 1_776_943_380.0
RETENTION = 30 * DAY


def event(event_id: str, state: DeliveryState = DeliveryState.PENDING,
          dest: str = "tt", at: float = T0) -> NewEvent:
    pending = state == DeliveryState.PENDING
    route = Route(dest, "CompletePayment", state, payload=b"{}" if pending else None,
                  reason=None if pending else "filtered by a rule")
    return NewEvent(Event("Purchase", event_id, int(at), received_at=at), (route,))


def bare(event_id: str, at: float = T0) -> NewEvent:
    """An event no destination took."""
    return NewEvent(Event("Purchase", event_id, int(at), received_at=at), ())


async def settle(store: Store, state: DeliveryState, now: float) -> None:
    """Claim what is due for "tt" and finish it with `state`, logging one attempt."""
    claimed = await store.claim("tt", 100, now, 60)
    await store.finish([Finished(c.delivery_id, c.lease_token, state, http_status=200,
                                 dead_reason="rejected" if state == "dead" else None)
                        for c in claimed],
                       AttemptRecord("tt", tuple(c.event_id for c in claimed), 200, 0, "OK",
                                     "r", 1.0, "delivered", now), now)


async def test_old_finished_rows_go_and_the_rest_stays(store: Store) -> None:
    old, now = T0, T0 + RETENTION + DAY
    await store.insert([event("sent")], old)
    await settle(store, DeliveryState.DELIVERED, old)
    await store.insert([event("dead")], old)
    await settle(store, DeliveryState.DEAD, old)
    await store.insert([event("filtered", DeliveryState.FILTERED)], old)
    await store.insert([event("waits", dest="paused")], old)  # pending: stays, however old
    await store.insert([event("recent", at=now - DAY)], now - DAY)
    await settle(store, DeliveryState.DELIVERED, now - DAY)
    pruned = await store.prune(now, RETENTION)
    assert (pruned.deliveries, pruned.events, pruned.attempts) == (3, 3, 2)
    for gone in ("sent", "dead", "filtered"):
        assert await store.deliveries(gone) == []
        assert await store.trace(gone) == []
    assert [v.state for v in await store.deliveries("recent")] == [DeliveryState.DELIVERED]
    (recent,) = await store.trace("recent")
    assert len(recent.log) == 1  # its attempt is younger than the retention
    assert [v.state for v in await store.deliveries("waits")] == [DeliveryState.PENDING]
    assert (await store.prune(now, RETENTION)).total == 0
    # The key went with its delivery: the same event_id is a new event now (long past 48 h).
    assert await store.insert([event("sent", at=now)], now) == [InsertOutcome.ACCEPTED]


async def test_pruning_goes_in_batches_of_the_limit(store: Store) -> None:
    await store.insert([event(f"e{i}", DeliveryState.SUPPRESSED) for i in range(5)], T0)
    await store.insert([bare("bare")], T0)
    now = T0 + RETENTION + 1
    passes = []
    while (pruned := await store.prune(now, RETENTION, limit=2)).total:
        passes.append((pruned.deliveries, pruned.events))
    assert all(d <= 2 and e <= 2 for d, e in passes)  # never more than the limit per table
    assert sum(d for d, _ in passes) == 5 and sum(e for _, e in passes) == 6
    assert len(passes) == 3


async def test_an_event_without_deliveries_goes_after_the_retention(store: Store) -> None:
    await store.insert([bare("no-routes")], T0)
    assert (await store.prune(T0 + RETENTION - 1, RETENTION)).events == 0
    assert (await store.prune(T0 + RETENTION + 1, RETENTION)).events == 1
    assert [r.event_id for r in await store.recent(RecentSearch())] == []
