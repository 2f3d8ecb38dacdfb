"""One conversion, two platforms (issues 26/27): TikTok and Meta each get it in their own
formats and hashing, with the same event_id, over real HTTP to both emulators."""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pixelrelay.app import create_app
from pixelrelay.config import Secret
from pixelrelay.destinations import REGISTRY
from pixelrelay.destinations.meta.settings import meta_destination
from pixelrelay.diagnostics.report import match_score
from tests.conftest import (
    ADMIN_TOKEN,
    META_PIXEL,
    META_TOKEN,
    SOURCE_KEY,
    emu_state,
    make_settings,
    meta_events,
)
from tests.support import ServerThread, wait_for

AUTH = {"Authorization": f"Bearer {SOURCE_KEY}"}
UA = "Mozilla/5.0 (X11; Linux x86_64) pixelrelay-test"


def sha(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()






@pytest.fixture
def gateway(tmp_path: Path, emulator: ServerThread, meta: ServerThread) -> Iterator[ServerThread]:
    base = make_settings(tmp_path / "two.db", emulator.url)
    second = meta_destination(name="meta", access_token=Secret(META_TOKEN),
                              pixel_id=META_PIXEL, api_url=f"{meta.url}/_meta")
    settings = dataclasses.replace(base, destinations=(*base.destinations, second))
    with ServerThread(create_app(settings)) as server:
        yield server


def test_one_purchase_reaches_both_platforms_each_hashed_its_own_way(
        gateway: ServerThread, emulator: ServerThread, meta: ServerThread) -> None:
    r = httpx.post(f"{gateway.url}/v1/events", headers=AUTH, json={
        "event": "Purchase", "timestamp": int(time.time()),
        "user": {"email": " Jane.Doe@Example.com ", "phone": "+49 170 1234567",
                 "first_name": "Mary-Jane", "city": "New York", "state": "California",
                 "zip_code": "94105-1234", "country": "US", "external_id": "cust-7",
                 "ip": "203.0.113.9", "user_agent": UA, "fbp": "fb.1.1700000000000.42",
                 "fbc": "fb.1.1700000000000.AbCdEf"},
        "page": {"url": "https://shop.example/thanks"},
        "properties": {"order_id": "5001", "value": 30.5, "currency": "EUR",
                       "contents": [{"content_id": "SKU-1", "quantity": 2, "price": 15.25}]}})
    assert r.status_code == 202 and r.json()["accepted"] == 1, r.text
    event_id = r.json()["event_ids"][0]
    assert event_id == "ord_5001_complete_payment"

    wait_for(lambda: any(e["event_id"] == event_id for e in emu_state(emulator).events))
    wait_for(lambda: any(e.get("event_id") == event_id for e in meta_events(meta)))
    tiktok = next(e for e in emu_state(emulator).events if e["event_id"] == event_id)
    fb = next(e for e in meta_events(meta) if e.get("event_id") == event_id)

    # TikTok: its own names and formats (phone with +, city plain), none of Meta's ids.
    assert tiktok["event"] == "CompletePayment"
    assert tiktok["user"]["phone"] == [sha("+491701234567")]
    assert tiktok["user"]["city"] == "newyork"
    assert "fbc" not in tiktok["user"] and "fbp" not in tiktok["user"]

    # Meta: Purchase, phone digits without +, city/state/zip/country hashed, fbc/fbp as given.
    assert fb["event_name"] == "Purchase" and fb["action_source"] == "website"
    user = fb["user_data"]
    assert user["em"] == [sha("jane.doe@example.com")]
    assert user["ph"] == [sha("491701234567")]
    assert user["fn"] == [sha("maryjane")]
    assert user["ct"] == [sha("newyork")]
    assert user["st"] == [sha("ca")]
    assert user["zp"] == [sha("94105")]
    assert user["country"] == [sha("us")]
    assert (user["fbc"], user["fbp"]) == ("fb.1.1700000000000.AbCdEf", "fb.1.1700000000000.42")
    assert user["client_ip_address"] == "203.0.113.9" and user["client_user_agent"] == UA
    assert fb["custom_data"]["contents"] == [{"id": "SKU-1", "quantity": 2, "item_price": 15.25}]
    assert (fb["custom_data"]["value"], fb["custom_data"]["currency"]) == (30.5, "EUR")

    # The diagnostics count Meta's ids too, and score Meta with them.
    mk = httpx.get(f"{gateway.url}/v1/diagnostics", params={"window": "1h"},
                   headers={"X-Admin-Token": ADMIN_TOKEN}).json()["match_keys"]
    assert (mk["counts"]["fbc"], mk["counts"]["fbp"], mk["counts"]["ttclid"]) == (1, 1, 0)
    assert mk["purchases_with_click_id"] == {"ttclid": 0, "fbc": 1}
    meta_score = next(d["score"] for d in mk["by_destination"] if d["destination"] == "meta")
    weights = REGISTRY["meta"].match_weights
    assert meta_score == match_score(mk["coverage"], weights)
    # all but last_name, which the event lacks: fbc and fbp count for Meta now
    assert meta_score == round(10 * (1 - weights["last_name"]), 1)


def test_a_backend_order_without_page_or_agent_goes_to_meta_as_system_generated(
        gateway: ServerThread, meta: ServerThread) -> None:
    r = httpx.post(f"{gateway.url}/v1/events", headers=AUTH, json={
        "event": "Purchase", "user": {"email": "a@example.com"},
        "properties": {"order_id": "5002", "value": 1, "currency": "EUR"}})
    assert r.status_code == 202
    wait_for(lambda: any(e.get("event_id") == "ord_5002_complete_payment"
                         for e in meta_events(meta)))
    fb = next(e for e in meta_events(meta) if e.get("event_id") == "ord_5002_complete_payment")
    assert fb["action_source"] == "system_generated"


def test_a_purchase_meta_would_refuse_is_filtered_there_and_still_goes_to_tiktok(
        gateway: ServerThread, emulator: ServerThread) -> None:
    r = httpx.post(f"{gateway.url}/v1/events", headers=AUTH, json={
        "event": "Purchase", "user": {"email": "b@example.com"},
        "properties": {"order_id": "5003"}})  # no value or currency: Meta refuses a batch
    assert r.status_code == 202
    wait_for(lambda: any(e["event_id"] == "ord_5003_complete_payment"
                         for e in emu_state(emulator).events))
    rows = httpx.get(f"{gateway.url}/v1/deliveries", params={
        "event_id": "ord_5003_complete_payment"},
        headers={"X-Admin-Token": ADMIN_TOKEN}).json()["deliveries"]
    meta_row = next(d for d in rows if d["destination"] == "meta")
    assert meta_row["state"] == "filtered" and "value and currency" in meta_row["reason"]


def test_where_the_conversion_happened_reaches_meta_and_a_wrong_value_is_refused(
        gateway: ServerThread, meta: ServerThread) -> None:
    r = httpx.post(f"{gateway.url}/v1/events", headers=AUTH, json={
        "event": "Lead", "event_id": "call-1", "action_source": " Phone_Call ",
        "user": {"email": "c@example.com"}})
    assert r.status_code == 202 and r.json()["accepted"] == 1, r.text
    wait_for(lambda: any(e.get("event_id") == "call-1" for e in meta_events(meta)))
    fb = next(e for e in meta_events(meta) if e.get("event_id") == "call-1")
    assert fb["action_source"] == "phone_call"  # before: system_generated

    r = httpx.post(f"{gateway.url}/v1/events", headers=AUTH, json={
        "event": "Lead", "action_source": "carrier_pigeon", "user": {"email": "c@example.com"}})
    assert r.status_code == 202
    [refusal] = r.json()["rejected"]
    assert refusal["errors"][0]["field"] == "action_source"
    assert "phone_call" in refusal["errors"][0]["reason"]


def test_metas_custom_data_gets_its_other_keys_and_the_senders_custom_properties(
        gateway: ServerThread, meta: ServerThread) -> None:
    r = httpx.post(f"{gateway.url}/v1/events", headers=AUTH, json={
        "event": "Purchase", "event_id": "cd-1", "user": {"email": "d@example.com"},
        "properties": {"value": 10, "currency": "EUR", "content_name": "Boots",
                       "status": "paid", "predicted_ltv": 240.5, "colour": "red",
                       "gift": {"wrapped": True}, "content_category": 7, "query": "boots"}})
    assert r.status_code == 202, r.text
    wait_for(lambda: any(e.get("event_id") == "cd-1" for e in meta_events(meta)))
    data = next(e for e in meta_events(meta) if e.get("event_id") == "cd-1")["custom_data"]
    assert data == {"value": 10, "currency": "EUR", "content_name": "Boots", "status": "paid",
                    "search_string": "boots", "predicted_ltv": 240.5, "colour": "red",
                    "gift": {"wrapped": True}}  # content_category 7: not Meta's type, left out
