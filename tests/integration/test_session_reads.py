"""A server event reads the visitor's session only when a session could add something a
configured destination sends: a backend that gives TikTok's ids, IP, user agent and consent
costs no read with TikTok alone (a PostgreSQL round trip per request, issue 29), and with
Meta configured too it is read for Meta's fbc and fbp, which it then gets."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import orjson

from pixelrelay.clock import FakeClock
from pixelrelay.config import Secret, Settings
from pixelrelay.destinations import build_destination
from pixelrelay.destinations.meta.settings import meta_destination
from pixelrelay.ingest import Ingestor
from pixelrelay.pipeline.enrich import SessionContext
from pixelrelay.store import SQLiteStore
from tests.conftest import make_settings
from tests.support import sqlite_exec

NOW = float(int(time.time()))
SESSION = "s_" + "a" * 32
BACKEND = {"event": "Purchase", "event_id": "o-1", "timestamp": int(NOW), "session_id": SESSION,
           "user": {"email": "jane@example.com", "ttclid": "E.C.P.x", "ttp": "2.t",
                    "ip": "203.0.113.9", "user_agent": "Mozilla/5.0 (test)"},
           "page": {"url": "https://shop.example/thanks"},
           "properties": {"value": 10, "currency": "EUR"},
           "consent": {"marketing": "granted", "ad_user_data": "granted",
                       "ad_personalization": "granted"}}


async def reads_and_meta_item(tmp_path: Path, settings: Settings) -> tuple[int, Any]:
    """(session reads for the backend's event, what Meta would be sent, if configured)."""
    store = SQLiteStore(str(tmp_path / "r.db"))
    await store.open()
    reads = 0
    find = store.find_sessions

    async def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        return await find(*args, **kwargs)

    store.find_sessions = counting  # type: ignore[method-assign]
    try:
        # The visitor's browser session, with Meta's ids, as the browser source keeps it.
        await store.record_session(SessionContext(
            SESSION, ip="203.0.113.9", first_seen=NOW, last_seen=NOW,
            click_ids={"fbc": "fb.1.1700000000000.AbC", "fbp": "fb.1.1700000000000.42"}),
            86400.0)
        ingest = Ingestor(settings, store, [build_destination(d) for d in settings.destinations],
                          FakeClock(NOW))
        assert (await ingest.accept([BACKEND])).accepted == 1
        rows = sqlite_exec(tmp_path / "r.db", "SELECT payload FROM deliveries"
                                              " WHERE destination = 'meta'")
        return reads, orjson.loads(rows[0][0]) if rows else None
    finally:
        await store.close()


async def test_with_tiktok_alone_a_complete_backend_event_reads_no_session(
        tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "r.db", "http://127.0.0.1:9")
    reads, _ = await reads_and_meta_item(tmp_path, settings)
    assert reads == 0  # it reads one for every event otherwise (Meta's fbc and fbp missing)


async def test_with_meta_configured_it_is_read_for_metas_ids(tmp_path: Path) -> None:
    base = make_settings(tmp_path / "r.db", "http://127.0.0.1:9")
    meta = meta_destination(name="meta", access_token=Secret("t"), pixel_id="123456789012345",
                            api_url="http://127.0.0.1:9")
    reads, item = await reads_and_meta_item(
        tmp_path, dataclasses.replace(base, destinations=(*base.destinations, meta)))
    assert reads == 1
    assert (item["user_data"]["fbc"], item["user_data"]["fbp"]) == (
        "fb.1.1700000000000.AbC", "fb.1.1700000000000.42")
