"""Issue 26: a destination type that hashes its own way (Meta) has its user object stored with
the event, so what is sent later from the store (a replay, a later copy's merge) carries every
key it was sent with the first time, hashed its way — not a hash set in TikTok's format, of
which only email and external_id could be reused. Consent that says no stores none of it."""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from pixelrelay.clock import FakeClock
from pixelrelay.config import Secret, Settings
from pixelrelay.destinations import build_destination
from pixelrelay.destinations.meta.settings import meta_destination
from pixelrelay.ingest import Ingestor
from pixelrelay.ops.replay import ReplayOptions, replay
from pixelrelay.store import SQLiteStore
from tests.conftest import make_settings
from tests.support import sqlite_exec

NOW = float(int(time.time()))
PERSON = {"email": "Jane.Doe@Example.com", "phone": "+49 170 1234567", "first_name": "Jane",
          "last_name": "Doe", "city": "Berlin", "zip_code": "10115", "country": "DE",
          "external_id": "cust-7"}


def sha(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


META_KEYS = {"em": [sha("jane.doe@example.com")], "ph": [sha("491701234567")],
             "fn": [sha("jane")], "ln": [sha("doe")], "ct": [sha("berlin")],
             "zp": [sha("10115")], "country": [sha("de")], "external_id": [sha("cust-7")]}


@dataclasses.dataclass
class Gateway:
    db: Path
    settings: Settings
    store: SQLiteStore
    clock: FakeClock

    def ingestor(self) -> Ingestor:
        return Ingestor(self.settings, self.store,
                        [build_destination(d) for d in self.settings.destinations], self.clock)

    def meta_payload(self, event_id: str) -> dict[str, Any]:
        rows = sqlite_exec(self.db, "SELECT payload FROM deliveries WHERE destination = 'meta'"
                                    " AND event_id = ?", (event_id,))
        assert len(rows) == 1 and rows[0][0] is not None, rows
        item: dict[str, Any] = orjson.loads(rows[0][0])
        return item

    def stored_body(self, event_id: str) -> dict[str, Any]:
        rows = sqlite_exec(self.db, "SELECT body FROM events WHERE event_id = ?", (event_id,))
        body: dict[str, Any] = orjson.loads(rows[0][0])
        return body


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    base = make_settings(tmp_path / "u.db", "http://127.0.0.1:9")
    meta = meta_destination(name="meta", access_token=Secret("t"), pixel_id="123456789012345",
                            api_url="http://127.0.0.1:9")
    settings = dataclasses.replace(base, destinations=(*base.destinations, meta))
    store = SQLiteStore(str(tmp_path / "u.db"))
    await store.open()
    try:
        yield Gateway(tmp_path / "u.db", settings, store, FakeClock(NOW))
    finally:
        await store.close()


def purchase(event_id: str, user: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"event": "Purchase", "event_id": event_id, "timestamp": int(NOW),
            "user": {**user, "ip": "203.0.113.9", "user_agent": "Mozilla/5.0 (test)"},
            "page": {"url": "https://shop.example/thanks"},
            "properties": {"value": 30.5, "currency": "EUR"}, **extra}


def personal_values() -> list[bytes]:
    return [v.encode() for v in ("Jane.Doe@Example.com", "jane.doe@example.com", "1701234567",
                                 "Berlin", "cust-7")]


async def test_the_meta_user_object_is_stored_hashed_and_sent_again_by_a_replay(
        gateway: Gateway) -> None:
    result = await gateway.ingestor().accept([purchase("p1", PERSON)])
    assert result.accepted == 1
    first = gateway.meta_payload("p1")["user_data"]
    assert {k: first[k] for k in META_KEYS} == META_KEYS
    stored = gateway.stored_body("p1")
    assert stored["hashed_users"] == {"meta": META_KEYS}
    raw = sqlite_exec(gateway.db, "SELECT body FROM events")[0][0]
    assert not any(v in raw for v in personal_values())  # hashes only

    sqlite_exec(gateway.db, "UPDATE deliveries SET state = 'dead', dead_reason = 'rejected',"
                            " next_attempt_at = NULL WHERE destination = 'meta'")
    gateway.clock.advance(60)
    summary = await replay(gateway.store, gateway.settings, ReplayOptions("meta"), gateway.clock)
    assert summary.requeued == 1
    again = gateway.meta_payload("p1")["user_data"]
    # Before the stored object, a replay had em and external_id only (TikTok's phone hash
    # is of "+49...", Meta's of the digits; names, place and country are plain there).
    assert {k: again[k] for k in META_KEYS} == META_KEYS


async def test_a_later_copy_adds_its_keys_to_the_stored_object(gateway: Gateway) -> None:
    browser = {"email": PERSON["email"], "country": "DE"}
    await gateway.ingestor().accept([purchase("p2", browser)])
    assert set(gateway.meta_payload("p2")["user_data"]) >= {"em", "country"}
    assert "ph" not in gateway.meta_payload("p2")["user_data"]
    # The server's copy of the same event brings the phone and another email.
    later = {"email": "jane@work.example", "phone": PERSON["phone"]}
    result = await gateway.ingestor().accept([purchase("p2", later)])
    assert result.duplicates == 1  # merged into the pending first copy
    user = gateway.meta_payload("p2")["user_data"]
    assert user["em"] == [sha("jane.doe@example.com"), sha("jane@work.example")]
    assert user["ph"] == [sha("491701234567")] and user["country"] == [sha("de")]
    assert gateway.stored_body("p2")["hashed_users"]["meta"]["ph"] == [sha("491701234567")]


async def test_consent_that_says_no_stores_no_user_object(gateway: Gateway) -> None:
    denied = {"marketing": "granted", "ad_user_data": "denied",
              "ad_personalization": "denied"}
    await gateway.ingestor().accept([purchase("p3", PERSON, consent=denied)])
    assert "hashed_users" not in gateway.stored_body("p3")
    user = gateway.meta_payload("p3")["user_data"]
    assert not set(user) & set(META_KEYS)
    assert user["client_ip_address"] == "203.0.113.9"  # context stays, as for TikTok


async def test_with_tiktok_alone_nothing_more_is_stored(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "t.db", "http://127.0.0.1:9")
    store = SQLiteStore(str(tmp_path / "t.db"))
    await store.open()
    try:
        ingest = Ingestor(settings, store, [build_destination(d) for d in settings.destinations],
                          FakeClock(NOW))
        await ingest.accept([purchase("p4", PERSON)])
        body = orjson.loads(sqlite_exec(tmp_path / "t.db", "SELECT body FROM events")[0][0])
        assert "hashed_users" not in body
    finally:
        await store.close()
