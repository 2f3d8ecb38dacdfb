"""The same data gives the same diagnostics on both engines: every read model and the
diagnostics report built from it, number for number (PostgreSQL reads the body as jsonb,
SQLite as JSON text: their JSON functions must agree, edge cases included)."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import psycopg
import pytest

from pixelrelay.diagnostics import report
from pixelrelay.model import Channel, DeliveryState, Event, Route, User, click_ids_of
from pixelrelay.store import open_store
from pixelrelay.store.base import AttemptRecord, Finished, NewEvent, Store
from pixelrelay.store.codec import decode_event
from pixelrelay.store.rows import IngestNote, RecentSearch, ReplayFilter
from tests.conftest import postgres_url

NOW = 1_776_943_380.0
NAMES = ("Purchase", "AddToCart", "Lead", "ViewContent")


def user(rng: random.Random) -> User:
    def maybe(value: str) -> str | None:
        return rng.choice((None, "", value))  # absent, empty (counts as missing), present

    return User(email=tuple("e" * 64 for _ in range(rng.randint(0, 2))),
                phone=tuple("p" * 64 for _ in range(rng.randint(0, 1))),
                external_id=tuple("x" * 64 for _ in range(rng.randint(0, 1))),
                ip=maybe("203.0.113.9"), user_agent=maybe("Mozilla/5.0"),
                first_name=maybe("f" * 64), last_name=maybe("l" * 64), zip_code=maybe("z" * 64),
                city=maybe("berlin"), state=maybe("be"), country=maybe("de"),
                click_ids=click_ids_of({"ttclid": maybe("E.C.P.clid") or "",
                                        "ttp": maybe("2.ttp") or "",
                                        "fbc": maybe("fb.1.1700000000000.Ab") or "",
                                        "fbp": maybe("fb.1.1700000000000.42") or ""}))


def events(seed: int = 7) -> list[tuple[NewEvent, float]]:
    """400 events over the last 3 days: server and browser copies of shared ids, held and
    suppressed routes, two destinations."""
    rng = random.Random(seed)
    out = []
    for i in range(400):
        at = NOW - rng.uniform(0, 3 * 86400)
        channel = rng.choice((Channel.SERVER, Channel.BROWSER, Channel.SHOPIFY))
        name = rng.choice(NAMES)
        props: dict[str, Any] = {"order_id": rng.choice((f"o{i}", 17, None)),
                                 "value": rng.choice((12.5, 3, "x", True))}
        event = Event(name, f"id{i % 300}", int(at), user=user(rng), properties=props,
                      received_at=at, channel=channel,
                      enriched_from=rng.choice((None, "session", "identity")))
        routes = tuple(
            Route(dest, "CompletePayment" if name == "Purchase" else name,
                  state, payload=b"{}" if state == "pending" else None,
                  reason=None if state == "pending" else "consent: marketing denied",
                  batch_key=rng.choice(("web", "app")))
            for dest in ("tt", "tt2") if rng.random() < 0.8
            for state in [rng.choice((DeliveryState.PENDING,) * 4 + (DeliveryState.SUPPRESSED,))])
        out.append((NewEvent(event, routes), at))
    return sorted(out, key=lambda x: x[1])


async def fill(store: Store) -> None:
    rng = random.Random(11)
    # Queued together, committed in groups: the writer keeps the queue's order on both.
    await asyncio.gather(*(store.insert([item], at) for item, at in events()))
    for dest in ("tt", "tt2"):  # deliver, fail, kill: the finished states with their codes
        while claimed := await store.claim(dest, 50, NOW, 60):
            fate = rng.choice(("delivered", "dead", "retry"))
            state = {"delivered": DeliveryState.DELIVERED, "dead": DeliveryState.DEAD,
                     "retry": DeliveryState.PENDING}[fate]
            code = {"delivered": 0, "dead": 40002, "retry": 50000}[fate]
            await store.finish([Finished(c.delivery_id, c.lease_token, state,
                                         next_attempt_at=NOW + 600, http_status=200, code=code,
                                         message=f"m{code}", request_id=f"r{rng.randint(0, 9)}",
                                         dead_reason="rejected" if fate == "dead" else None)
                                for c in claimed],
                               AttemptRecord(dest, tuple(c.event_id for c in claimed), 200, code,
                                             f"m{code}", "r", 10.0, fate, NOW), NOW)
    await store.record_ingest(NOW - 60, "browser", [
        IngestNote("duplicate", "Purchase", event_id="id1"),
        IngestNote("duplicate", "Purchase", event_id="id2", merged=True),
        IngestNote("rejected", "Lead", "event", "is required", event_id="ord_7_x",
                   order_id="7", sample=({"field": "event", "reason": "is required"},)),
        IngestNote("unknown_field", "Lead", "user.shoe_size")])
    await store.record_collect_refusal(NOW - 30, "origin_not_allowed", "https://a.example")


@pytest.fixture
async def engines(tmp_path: Path) -> AsyncIterator[tuple[Store, Store]]:
    with postgres_url() as url:
        sqlite, postgres = open_store(f"sqlite:///{tmp_path / 'same.db'}"), open_store(url)
        for store in (sqlite, postgres):
            await store.open()
            await fill(store)
        yield sqlite, postgres
        for store in (sqlite, postgres):
            await store.close()


def canonical(rows: Any) -> Any:
    """Rows in a fixed order (neither engine promises one for a GROUP BY)."""
    if dataclasses.is_dataclass(rows):
        return {f.name: canonical(getattr(rows, f.name)) for f in dataclasses.fields(rows)}
    if isinstance(rows, list):
        return sorted((tuple(r) if isinstance(r, list | tuple) else r for r in rows), key=repr)
    return rows


async def test_every_window_and_its_report_are_the_same(engines: tuple[Store, Store]) -> None:
    sqlite, postgres = engines
    for window, span in report.WINDOWS.items():
        since, bucket = NOW - span, report.TREND_BUCKETS[window]
        a, b = await sqlite.window(since, bucket), await postgres.window(since, bucket)
        assert canonical(a) == canonical(b), window
        if window == "7d":  # the data reaches every count
            assert a.coverage and a.dedup and a.enrichment and a.dead and a.latencies
        queues_a, queues_b = (await sqlite.queues(["tt", "tt2"]),
                              await postgres.queues(["tt", "tt2"]))
        assert queues_a == queues_b
        assert (report.build(a, queues_a, {}, window, NOW)
                == report.build(b, queues_b, {}, window, NOW))


async def test_lookups_traces_and_ops_reads_are_the_same(engines: tuple[Store, Store]) -> None:
    sqlite, postgres = engines
    for q in ("", "id1", "id29", "Purchase", "7", "nothing"):
        assert await sqlite.recent(RecentSearch(q), 20) == await postgres.recent(
            RecentSearch(q), 20), q
    searches = [RecentSearch(q, state, dest, channel)
                for q in ("", "Purchase", "id2") for state in ("", "dead", "suppressed")
                for dest in ("", "tt2") for channel in ("", "shopify")]
    for search in searches:
        found = await sqlite.recent(search, 500)
        assert found == await postgres.recent(search, 500), search
        for row in found:  # each filter holds on what came back
            states = [s.split(":") for s in row.states.split(", ")]
            assert not search.channel or row.channel == search.channel
            assert not (search.state or search.destination) or any(
                (not search.state or st == search.state)
                and (not search.destination or d == search.destination) for d, st in states)
    dead_tt2 = await sqlite.recent(RecentSearch(state="dead", destination="tt2"), 500)
    assert dead_tt2 and len(dead_tt2) < len(await sqlite.recent(RecentSearch(), 500))
    for event_id in ("id1", "id2", "id150"):
        assert await sqlite.deliveries(event_id) == await postgres.deliveries(event_id)
        a, b = await sqlite.trace(event_id), await postgres.trace(event_id)
        # jsonb keeps the same JSON with its own key order: compare what it decodes to.
        assert [(dataclasses.replace(t, body=b""), decode_event(t.body)) for t in a] == [
            (dataclasses.replace(t, body=b""), decode_event(t.body)) for t in b]
        assert await sqlite.later_copies(event_id) == await postgres.later_copies(event_id)
    assert await sqlite.rejections("ord_7_x", "7") == await postgres.rejections("ord_7_x", "7")
    assert await sqlite.rejected_orders() == await postgres.rejected_orders()
    for dest in ("tt", "tt2"):
        assert (await sqlite.purchase_records(dest, ["Purchase", "CompletePayment"])
                == await postgres.purchase_records(dest, ["Purchase", "CompletePayment"]))
        f = ReplayFilter(dest, (DeliveryState.DEAD, DeliveryState.DELIVERED), NOW - 86400,
                         None, "CompletePayment")
        assert (await sqlite.count_replay_candidates(f)
                == await postgres.count_replay_candidates(f) > 0)
        a_c, b_c = (await sqlite.replay_candidates(f, 0, 1000),
                    await postgres.replay_candidates(f, 0, 1000))
        # Ids are the engine's own (PostgreSQL's sequences leave gaps): compare the rest.
        assert [(dataclasses.replace(c, body=b"", delivery_id=0), decode_event(c.body))
                for c in a_c] == [
            (dataclasses.replace(c, body=b"", delivery_id=0), decode_event(c.body))
            for c in b_c]


async def test_the_stored_facets_count_what_the_bodies_say(engines: tuple[Store, Store],
                                                           tmp_path: Path) -> None:
    """The read models count channel, enrichment and match keys from columns written at
    insert; rows without them (stored before migration 011 / 002, or merged since) are read
    from their bodies. Both ways give the same numbers, on both engines."""
    postgres = engines[1]
    since, bucket = NOW - report.WINDOWS["7d"], report.TREND_BUCKETS["7d"]
    from_columns = [canonical(await s.window(since, bucket)) for s in engines]
    recent = [await s.recent(RecentSearch(channel="browser"), 500) for s in engines]
    assert from_columns[0]["coverage"] and recent[0]
    forget = "UPDATE events SET channel = NULL, enriched = NULL, match_keys = NULL"
    with sqlite3.connect(tmp_path / "same.db") as conn:
        assert conn.execute("SELECT count(*) FROM events WHERE match_keys IS NULL"
                            ).fetchone() == (0,)
        conn.execute(forget)
    with psycopg.connect(cast(Any, postgres).url) as pg:
        pg.execute(forget)
    assert [canonical(await s.window(since, bucket)) for s in engines] == from_columns
    assert [await s.recent(RecentSearch(channel="browser"), 500) for s in engines] == recent
