"""Claims for batches: one batch_key per claim, topped up with its due rows; draining retries."""

from __future__ import annotations

from pixelrelay.model import DeliveryState, Event, Route
from pixelrelay.store.base import Finished, NewEvent, Store
from tests.contract.test_store_contract import T0


def event(event_id: str, key: str = "web", not_before: float | None = None) -> NewEvent:
    return NewEvent(Event(name="Purchase", event_id=event_id, event_time=int(T0)),
                    (Route("tt", "CompletePayment", DeliveryState.PENDING, payload=b"{}",
                           batch_key=key, not_before=not_before),))


async def fail(store: Store, event_ids: set[str], now: float, retry_at: float) -> None:
    """Claim what is due, send the given events back to wait for retry_at, deliver the rest."""
    claimed = await store.claim("tt", 100, now, 60)
    await store.finish([Finished(c.delivery_id, c.lease_token,
                                 DeliveryState.PENDING if c.event_id in event_ids
                                 else DeliveryState.DELIVERED,
                                 next_attempt_at=retry_at, http_status=503)
                        for c in claimed], None, now)


async def ids(store: Store, limit: int, now: float, retry_before: float | None = None
              ) -> list[str]:
    return [c.event_id for c in await store.claim("tt", limit, now, 60, retry_before)]


async def test_a_claim_holds_one_batch_key_the_oldest_due_rows(store: Store) -> None:
    await store.insert([event("t1", "web|test=ABC")], T0)
    await store.insert([event("w1"), event("a1", "app"), event("w2")], T0 + 1)
    await store.insert([event("t2", "web|test=ABC"), event("w3")], T0 + 2)
    first = await store.claim("tt", 10, T0 + 10, 60)
    assert [c.event_id for c in first] == ["t1", "t2"]  # the oldest row's key, topped up
    assert {c.batch_key for c in first} == {"web|test=ABC"}
    assert await ids(store, 2, T0 + 10) == ["w1", "w2"]  # capped at the limit
    assert await ids(store, 10, T0 + 10) == ["a1"]  # now the oldest due row is a1's
    assert await ids(store, 10, T0 + 10) == ["w3"]
    assert await ids(store, 10, T0 + 10) == []


async def test_a_retry_coming_due_is_topped_up_with_newer_rows_of_its_key(store: Store) -> None:
    await store.insert([event("r1"), event("r2")], T0)
    await fail(store, {"r1", "r2"}, T0, retry_at=T0 + 30)
    await store.insert([event("n1"), event("x1", "app"), event("n2")], T0 + 20)
    assert await ids(store, 10, T0 + 25) == ["n1", "n2"]  # the retry is not due yet
    await store.insert([event("n3"), event("n4")], T0 + 26)
    assert await ids(store, 10, T0 + 30) == ["x1"]  # oldest due row first: x1 waits since 20
    assert await ids(store, 10, T0 + 30) == ["n3", "n4", "r1", "r2"]  # one full request


async def test_a_drain_takes_retries_scheduled_before_the_recovery_only(store: Store) -> None:
    await store.insert([event("old1"), event("old2")], T0)
    await fail(store, {"old1", "old2"}, T0, retry_at=T0 + 500)
    await store.insert([event("held", not_before=T0 + 400)], T0 + 1)  # held, never attempted
    recovered = T0 + 100
    await store.insert([event("new")], T0 + 150)
    await fail(store, {"new"}, T0 + 150, retry_at=T0 + 160)  # failed after the recovery
    assert await ids(store, 10, T0 + 155) == []
    assert await ids(store, 10, T0 + 155, retry_before=recovered) == ["old1", "old2"]
    assert await ids(store, 10, T0 + 155, retry_before=recovered) == []  # keeps its backoff
    assert await ids(store, 10, T0 + 160) == ["new"]
    assert await ids(store, 10, T0 + 400) == ["held"]  # its hold ends when it said
