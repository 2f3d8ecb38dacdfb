"""The IngestLog contract on every store: refusals, duplicates and notices recorded, found
again by event_id or order id, counted in the window, and pruned after the longest window."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from pixelrelay.store.base import IngestLogFor, InsertOutcome, Store
from pixelrelay.store.rows import PRUNE_AFTER_S, IngestNote, LaterCopy, NotesCall, RejectionRow
from tests.contract.test_store_contract import new_event

NOW = 1_776_943_400.0


async def test_notes_are_recorded_found_counted_and_pruned(store: Store) -> None:
    old = IngestNote("rejected", "Purchase", "user.ip", "bad", event_id="ord_9_x",
                     order_id="9")
    await store.record_ingest(NOW - PRUNE_AFTER_S - 60, "server", [old])
    problems = ({"field": "event", "reason": "is required"},
                {"field": "user.ip", "reason": "is not a valid IPv4 or IPv6 address"})
    await store.record_ingest(NOW, "browser", [
        IngestNote("duplicate", "Purchase", event_id="ord_1"),
        IngestNote("duplicate", "Purchase", event_id="ord_1", merged=True),
        IngestNote("rejected", "Lead", "event", "is required", problems=2,
                   event_id="ord_7_submit_form", order_id="7", sample=problems),
        IngestNote("unknown_field", "Lead", "user.shoe_size")])
    rows = await store.window(NOW - 3600, 300)
    assert rows.ingest_rejections == [("Lead", "event", "is required", 1)]  # the old one: pruned
    assert rows.duplicates == [("Purchase", 2, 1)]
    assert rows.notices == [("Lead", "user.shoe_size", "unknown_field", 1)]
    found = RejectionRow(NOW, "browser", "Lead", "ord_7_submit_form", "7", list(problems))
    assert await store.rejections("ord_7_submit_form", None) == [found]
    assert await store.rejections(None, "7") == [found]
    assert await store.rejections(None, "9") == []  # pruned
    assert await store.later_copies("ord_1") == [LaterCopy(NOW, "browser", False),
                                                 LaterCopy(NOW, "browser", True)]


async def test_refused_tag_hits_are_counted_by_reason_and_origin(store: Store) -> None:
    for origin in ("https://a.example", "https://a.example", None):
        await store.record_collect_refusal(NOW, "origin_not_allowed" if origin else
                                           "unknown_key", origin)
    rows = await store.window(NOW - 60, 60)
    assert sorted(rows.collect_refusals, key=str) == sorted(
        [("origin_not_allowed", "https://a.example", 2), ("unknown_key", None, 1)], key=str)


async def test_an_insert_writes_its_log_with_its_events_and_a_failing_log_loses_only_itself(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    def log_of(name: str) -> IngestLogFor:
        def notes(outcomes: Sequence[InsertOutcome]) -> NotesCall:
            return (NOW, "server", [IngestNote("duplicate", name, event_id=name)
                                    if o is InsertOutcome.DUPLICATE else
                                    IngestNote("unknown_field", name, "user.shoe_size")
                                    for o in outcomes])
        return notes

    def broken(outcomes: Sequence[InsertOutcome]) -> NotesCall:
        raise RuntimeError("a bug in the log")

    await store.insert([new_event("first")], NOW)
    # Queued together, so on both engines they share one group (the bulk path).
    results = await asyncio.gather(
        store.insert([new_event("first")], NOW, ingest_log=log_of("Again")),
        store.insert([new_event("second")], NOW, ingest_log=broken),
        store.insert([new_event("third")], NOW, ingest_log=log_of("Lead")))
    assert results == [[InsertOutcome.DUPLICATE], [InsertOutcome.ACCEPTED],
                       [InsertOutcome.ACCEPTED]]
    assert {r.event_id for r in await store.claim("tt", 10, NOW, 30.0)} == {
        "first", "second", "third"}
    rows = await store.window(NOW - 3600, 300)
    assert rows.duplicates == [("Again", 1, 0)]
    assert rows.notices == [("Lead", "user.shoe_size", "unknown_field", 1)]
    assert "could not record the ingest log" in caplog.text
    # Alone (no group to share), a failing log still loses no event.
    assert await store.insert([new_event("fourth")], NOW, ingest_log=broken) == [
        InsertOutcome.ACCEPTED]
