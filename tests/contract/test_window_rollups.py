"""The diagnostics window read from stored minutes (store.roll_up) gives the numbers of one
exact scan, on both engines, and stays exact while the rows those minutes counted change:
deliveries finishing, dying and replayed, a merged copy, a browser copy that comes late,
retention deleting, rows stamped with an older clock. Reads between a change and the next
roll-up scan the dirty minutes."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from pixelrelay.diagnostics import report
from pixelrelay.model import Channel, DeliveryState, Event, Route, User
from pixelrelay.store.base import AttemptRecord, Finished, Merged, NewEvent, Requeue, Store
from pixelrelay.store.codec import encode_event
from pixelrelay.store.rollup import ROLL_UP_BATCH
from pixelrelay.store.rows import IngestNote, RecentSearch, ReplayFilter
from tests.contract.conftest import StoreFactory
from tests.contract.test_read_models_agree import NOW, canonical, fill

DESTINATIONS = ("tt", "tt2", "none")  # "none" has no rows at all


async def windows(store: Store) -> dict[str, Any]:
    """Every window and its report; and that each one's queues, read from the window's
    counts, are those that counting every waiting row gives."""
    out = {}
    counted = await store.queues(DESTINATIONS)
    assert counted[0].pending and counted[1].pending  # the data has queues to count
    for window, span in report.WINDOWS.items():
        since, bucket = NOW - span + 17.5, report.TREND_BUCKETS[window]  # a part-minute first
        rows = await store.window(since, bucket, DESTINATIONS)
        assert rows.queues == counted, window
        out[window] = (canonical(rows), report.build(rows, rows.queues, {}, window, NOW))
    return out


async def exact(store: Store) -> dict[str, Any]:
    """One scan of every window: what the stored minutes must add up to."""
    await store.forget_rollups()
    return await windows(store)


async def roll_up(store: Store, now: float) -> int:
    total = 0
    while (n := await store.roll_up(now)) == ROLL_UP_BATCH:
        total += n
    return total + n


async def test_stored_minutes_add_up_to_the_exact_scan(make_store: StoreFactory,
                                                       engine: str) -> None:
    store = await make_store()
    await fill(store)
    scanned = await windows(store)  # nothing stored yet: every window is scanned
    assert scanned["7d"][0]["coverage"] and scanned["7d"][0]["dedup"]
    # Every minute from the first row's (the fill spans 3 days; the empty days of the week
    # before it are left to the readers, who scan them as one range).
    assert await roll_up(store, NOW + 600) >= 3 * 1440
    assert await store.roll_up(NOW + 600) == 0  # all stored, nothing dirty
    assert await windows(store) == scanned
    await store.forget_rollups()
    if engine == "sqlite":  # one process per file: a restart
        await store.close()
        store = await make_store()
        assert await roll_up(store, NOW + 600) >= 3 * 1440
    else:  # two processes at once: each minute is stored by one of them, once
        other = await make_store()
        done = await asyncio.gather(roll_up(store, NOW + 600), roll_up(other, NOW + 600))
        assert sum(done) >= 3 * 1440
        assert await roll_up(other, NOW + 600) == 0
    assert await windows(store) == scanned


async def test_minutes_whose_rows_change_are_counted_again(make_store: StoreFactory) -> None:
    store = await make_store()
    await fill(store)
    await roll_up(store, NOW + 600)
    before = await windows(store)

    # Retries come due and finish: delivered and dead rows of minutes already stored.
    claimed = await store.claim("tt", 40, NOW + 700, 60)
    assert claimed
    await store.finish([Finished(c.delivery_id, c.lease_token,
                                 DeliveryState.DELIVERED if i % 2 else DeliveryState.DEAD,
                                 http_status=200, code=0 if i % 2 else 40002, message="m",
                                 dead_reason=None if i % 2 else "rejected")
                        for i, c in enumerate(claimed)],
                       AttemptRecord("tt", tuple(c.event_id for c in claimed), 200, 0, "", "r",
                                     5.0, "mixed", NOW + 700), NOW + 700)
    # A dead delivery replayed: it leaves its old minute for now.
    f = ReplayFilter("tt2", (DeliveryState.DEAD,), None, None, None)
    dead = await store.replay_candidates(f, 0, 5)
    assert dead
    await store.requeue("tt2", [Requeue(c.delivery_id, c.event_id, c.state, c.dest_event,
                                        c.dest_event, "web", b"{}") for c in dead], NOW + 710)
    # A later server copy folds more match keys into a pending first copy of yesterday.
    waiting = [r for r in await store.recent(RecentSearch(state="pending", destination="tt"),
                                             500)
               if r.received_at > NOW - 40 * 3600 and r.name != "Purchase"]
    assert waiting
    first = waiting[0]
    richer = Event(first.name, first.event_id, int(first.received_at), received_at=NOW + 720,
                   user=User(email=("e" * 64,), phone=("p" * 64,),
                             click_ids=(("ttclid", "E.C.P.late"),)),
                   enriched_from="session")
    route = Route("tt", first.name, DeliveryState.PENDING, payload=b'{"merged":1}')
    merged = await store.insert([NewEvent(richer, (route,), merge=lambda body: Merged(
        encode_event(dataclasses.replace(richer, received_at=first.received_at)),
        {"tt": route}, release=True))], NOW + 720)
    assert [str(m) for m in merged] == ["merged"]
    # The browser's copy of an old server event comes late (the tag's queue flushed).
    server_only = [r for r in await store.recent(RecentSearch(channel="server"), 500)
                   if r.received_at < NOW - 3600]
    assert server_only
    await store.record_ingest(NOW + 730, "browser", [
        IngestNote("duplicate", server_only[0].name, event_id=server_only[0].event_id)])
    # Rows stamped into minutes already stored (a writer whose clock is behind the others).
    late = Event("Lead", "late-1", int(NOW - 7200), received_at=NOW - 7200)
    await store.insert([NewEvent(late, (Route("tt", "Lead", DeliveryState.PENDING,
                                              payload=b"{}"),))], NOW - 7200)
    await store.record_ingest(NOW - 7100, "server", [
        IngestNote("rejected", "Lead", "event_time", "is too old"),
        IngestNote("unknown_field", "Lead", "properties.shoe")])
    await store.record_collect_refusal(NOW - 7000, "unknown_key", None)
    # Retention deletes finished rows older than 2.5 days: minutes inside the 7 d window.
    pruned = await store.prune(NOW + 740, 2.5 * 86400)
    assert pruned.total

    # Some rows claimed and left in flight: still queued, no longer pending.
    assert await store.claim("tt", 5, NOW + 750, 600)

    changed = await windows(store)  # stored minutes, the dirty ones scanned again
    truth = await exact(store)
    assert changed == truth
    assert changed != before
    assert await roll_up(store, NOW + 900) >= 3 * 1440
    assert await windows(store) == truth


async def test_a_browser_event_after_the_server_copy_counts_for_dedup(
        make_store: StoreFactory) -> None:
    """A browser copy stored as an event of its own (another route, so another key) makes
    the earlier server arrival of that event_id 'also from the browser'."""
    store = await make_store()
    at = NOW - 3 * 3600
    server = Event("AddToCart", "shared-1", int(at), received_at=at, channel=Channel.SERVER)
    await store.insert([NewEvent(server, (Route("tt", "AddToCart", DeliveryState.PENDING,
                                               payload=b"{}"),))], at)
    await roll_up(store, NOW)
    since, bucket = NOW - 86400, report.TREND_BUCKETS["24h"]
    assert (await store.window(since, bucket)).dedup == [("AddToCart", 1, 0)]
    browser = dataclasses.replace(server, received_at=NOW - 60, channel=Channel.BROWSER)
    await store.insert([NewEvent(browser, (Route("tt2", "AddToCart", DeliveryState.PENDING,
                                                payload=b"{}"),))], NOW - 60)
    assert (await store.window(since, bucket)).dedup == [("AddToCart", 1, 1)]
    await roll_up(store, NOW + 600)
    assert (await store.window(since, bucket)).dedup == [("AddToCart", 1, 1)]


async def test_dedup_looks_back_48_hours_from_each_server_arrival(
        make_store: StoreFactory) -> None:
    """However the window is split into stored minutes and scans, a browser copy counts when
    it came at most 48 h before the server arrival's minute (or any time after)."""
    store = await make_store()

    async def arrive(event_id: str, at: float, channel: Channel, dest: str) -> None:
        event = Event("Lead", event_id, int(at), received_at=at, channel=channel)
        await store.insert([NewEvent(event, (Route(dest, "Lead", DeliveryState.PENDING,
                                                   payload=b"{}"),))], at)

    await arrive("old-browser", NOW - 100 * 3600, Channel.BROWSER, "tt")
    await arrive("old-browser", NOW - 20 * 3600, Channel.SERVER, "tt2")  # 80 h later: no
    await arrive("near-browser", NOW - 60 * 3600, Channel.BROWSER, "tt")
    await arrive("near-browser", NOW - 20 * 3600, Channel.SERVER, "tt2")  # 40 h later: yes
    since, bucket = NOW - report.WINDOWS["7d"], report.TREND_BUCKETS["7d"]
    scanned = (await store.window(since, bucket)).dedup
    assert scanned == [("Lead", 2, 1)]
    await roll_up(store, NOW + 600)
    assert (await store.window(since, bucket)).dedup == scanned
