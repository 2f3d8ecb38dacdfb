"""Insert calls that share one writer group (on PostgreSQL one statement for the whole group,
store/postgres/outbox.py insert_many) have the outcomes, ids and order of the same calls run
one after the other, on every engine; and what the PostgreSQL group costs."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from pixelrelay.model import DeliveryState, Event, Route
from pixelrelay.store.base import InsertOutcome, Merged, NewEvent, Store
from pixelrelay.store.postgres.outbox import Q
from pixelrelay.store.rows import IngestNote, NotesCall
from tests.contract.test_store_contract import T0, new_event, pending

ACCEPTED, DUPLICATE, MERGED = InsertOutcome.ACCEPTED, InsertOutcome.DUPLICATE, InsertOutcome.MERGED


def _merge(body: bytes) -> Merged:
    return Merged(body=body, routes={"tt": pending()}, release=True)


def copy(event_id: str) -> NewEvent:
    """A later copy that merges into a first copy still pending."""
    return NewEvent(Event("Purchase", event_id, int(T0)), (pending(),), merge=_merge)


async def test_a_group_of_new_duplicate_and_merging_calls_acts_as_one_after_the_other(
        store: Store) -> None:
    held = Route("tt", "CompletePayment", DeliveryState.PENDING, payload=b'{"x":1}',
                 not_before=T0 + 600)
    await store.insert([NewEvent(Event("Purchase", "held", int(T0)), (held,))], T0)
    await store.insert([new_event("sent")], T0)
    (in_flight,) = await store.claim("tt", 10, T0, 60)
    assert in_flight.event_id == "sent"
    commits = getattr(store, "commits", None)
    no_routes = NewEvent(Event("Purchase", "quiet", int(T0)), ())
    two_routes = new_event("both", pending(), pending(dest="other"))
    first, second, third = await asyncio.gather(
        # new; a copy of one in flight (stays a duplicate); a copy of a pending one (merges)
        store.insert([new_event("a"), copy("sent"), copy("held")], T0 + 1),
        # a key the first call took; an event without routes; new with two routes
        store.insert([new_event("a"), no_routes, two_routes], T0 + 1),
        # a copy of the second call's "both" (merges: an earlier call's copy); new; a copy
        # of its own call's first copy (a duplicate: nothing merges into its own call)
        store.insert([copy("both"), new_event("c"), copy("c")], T0 + 1))
    assert first == [ACCEPTED, DUPLICATE, MERGED]
    assert second == [DUPLICATE, ACCEPTED, ACCEPTED]
    assert third == [MERGED, ACCEPTED, DUPLICATE]
    if commits is not None:  # they shared one transaction
        assert store.commits - commits == 1  # type: ignore[attr-defined]
    # Ids follow the calls' order: claims of one due time come oldest first. The merge
    # released "held" (its due time is the merge's).
    claimed = await store.claim("tt", 10, T0 + 1, 60)
    assert [c.event_id for c in claimed] == ["held", "a", "both", "c"]
    assert [c.event_id for c in await store.claim("other", 10, T0 + 1, 60)] == ["both"]
    assert [v.state for v in await store.deliveries("quiet")] == []


async def test_a_group_of_duplicates_only_stores_nothing(store: Store) -> None:
    await store.insert([new_event("d1"), new_event("d2")], T0)
    again = await asyncio.gather(store.insert([new_event("d1")], T0 + 1),
                                 store.insert([new_event("d2"), new_event("d1")], T0 + 1))
    assert again == [[DUPLICATE], [DUPLICATE, DUPLICATE]]
    assert [c.event_id for c in await store.claim("tt", 10, T0 + 1, 60)] == ["d1", "d2"]


@pytest.mark.engines("postgres")
async def test_postgres_sends_a_group_as_one_statement_between_begin_and_commit(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    await store.insert([new_event("warm")], T0)  # the writer's connection is open
    conn = store._db._wconn  # type: ignore[attr-defined]
    sent: list[str] = []
    execute = conn.execute

    async def counted(query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append("insert_group" if query == Q["insert_group"] else str(query))
        return await execute(query, *args, **kwargs)

    monkeypatch.setattr(conn, "execute", counted)
    outcomes = await asyncio.gather(*(store.insert([new_event(f"g{i}")], T0)
                                      for i in range(20)))
    assert outcomes == [[ACCEPTED]] * 20
    assert sent == ["BEGIN", "insert_group", "COMMIT"]


@pytest.mark.engines("postgres")
async def test_a_log_the_database_refuses_loses_only_the_log_on_postgres(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    """PostgreSQL text cannot hold U+0000: the log's insert fails in its savepoint; the
    events of its call and of the others in the group are kept, and later calls go on."""
    def unstorable(outcomes: Sequence[InsertOutcome]) -> NotesCall:
        return (T0, "server", [IngestNote("unknown_field", "Bad\x00Name", "user.x")])

    def fine(outcomes: Sequence[InsertOutcome]) -> NotesCall:
        return (T0, "server", [IngestNote("unknown_field", "Lead", "user.shoe_size")])

    results = await asyncio.gather(
        store.insert([new_event("n1")], T0, ingest_log=fine),
        store.insert([new_event("n2")], T0, ingest_log=unstorable))
    assert results == [[ACCEPTED], [ACCEPTED]]
    assert "could not record the ingest log" in caplog.text
    assert await store.insert([new_event("n3")], T0, ingest_log=unstorable) == [ACCEPTED]
    assert await store.insert([new_event("n4")], T0, ingest_log=fine) == [ACCEPTED]
    assert [c.event_id for c in await store.claim("tt", 10, T0, 60)] == ["n1", "n2", "n3",
                                                                          "n4"]
    rows = await store.window(T0 - 3600, 300)
    assert rows.notices == [("Lead", "user.shoe_size", "unknown_field", 1)]
