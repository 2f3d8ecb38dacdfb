"""The IngestLog contract on every store: refusals, duplicates and notices recorded, found
again by event_id or order id, counted in the window, and pruned after the longest window."""

from __future__ import annotations

from pixelrelay.store.base import Store
from pixelrelay.store.rows import PRUNE_AFTER_S, IngestNote, LaterCopy, RejectionRow

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
