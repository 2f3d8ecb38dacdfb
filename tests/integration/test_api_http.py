"""POST /v1/events and the TikTok-compatible endpoint over real HTTP, delivering to the emulator."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from pixelrelay.app import create_app
from pixelrelay.config import ConsentSettings
from tests.conftest import (
    ADMIN_TOKEN,
    PIXEL,
    SOURCE_KEY,
    emu_state,
    make_settings,
    stored_bytes,
)
from tests.support import ServerThread, wait_for

AUTH = {"Authorization": f"Bearer {SOURCE_KEY}"}
EMAIL_HASH = "848a771458438fc2ec420560d769fb9b9b86851ee338ec56517baabd79d3bb4f"
PHONE_HASH = "9f7ec22d72092cd3c0b58726ed9c2d91b92e51a3f29837508fb2948bb22dd2fd"


def now() -> int:
    return int(time.time())


@pytest.fixture
def gateway(storage_url: str, emulator: ServerThread) -> Iterator[ServerThread]:
    app = create_app(make_settings(storage_url, emulator.url,
                                   consent=ConsentSettings(require_in_regions=("EEA",))))
    with ServerThread(app) as server:
        yield server


def post(gw: ServerThread, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return httpx.post(f"{gw.url}/v1/events", content=content,
                      headers={"Content-Type": "application/json", **(AUTH if headers is None
                                                                      else headers)})


def received(emulator: ServerThread, **match: Any) -> list[dict[str, Any]]:
    return [e for e in emu_state(emulator).events
            if all(e.get(k) == v for k, v in match.items())]


def test_purchase_reaches_tiktok_hashed_mapped_and_batched(gateway: ServerThread,
                                                           emulator: ServerThread) -> None:
    r = post(gateway, {"event": "Purchase", "timestamp": now() * 1000,
                       "user": {"email": " ALICE_abc@gmail.com ", "phone": "(+1)2133734253",
                                "external_id": "user_123", "ttclid": "E.C.P.abc",
                                "ip": "203.0.113.42", "user_agent": "UA/1.0"},
                       "page": {"url": "https://shop.example/thanks"},
                       "properties": {"order_id": 10492, "value": "129.95", "currency": "eur",
                                      "contents": [{"content_id": "SKU-1", "quantity": 1,
                                                    "price": 129.95}]}})
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["accepted"] == 1 and body["duplicates"] == 0 and body["rejected"] == []
    assert body["event_ids"] == ["ord_10492_complete_payment"]
    wait_for(lambda: received(emulator, event_id="ord_10492_complete_payment"))
    sent = received(emulator, event_id="ord_10492_complete_payment")[0]
    assert sent["_pixel_code"] == PIXEL and sent["_event_source"] == "web"
    assert sent["event"] == "CompletePayment"
    assert abs(sent["event_time"] - now()) < 60 and isinstance(sent["event_time"], int)
    assert sent["user"]["email"] == [EMAIL_HASH]
    assert sent["user"]["phone"] == [PHONE_HASH]
    assert sent["user"]["external_id"] == [
        "80fba0ae1c48e3978e43e4efc365e14e12ea0c830ba8ba5b9a2dafc7e3f2ab8b"]
    assert sent["user"]["ttclid"] == "E.C.P.abc" and sent["user"]["ip"] == "203.0.113.42"
    props = sent["properties"]
    assert (props["currency"], props["value"], props["order_id"]) == ("EUR", 129.95, "10492")
    assert sent["limited_data_use"] is False

    log = httpx.get(f"{gateway.url}/v1/deliveries",
                    params={"event_id": "ord_10492_complete_payment"},
                    headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert log.status_code == 200
    wait_for(lambda: httpx.get(f"{gateway.url}/v1/deliveries",
                               params={"event_id": "ord_10492_complete_payment"},
                               headers={"X-Admin-Token": ADMIN_TOKEN}
                               ).json()["deliveries"][0]["state"] == "delivered")
    row = httpx.get(f"{gateway.url}/v1/deliveries",
                    params={"event_id": "ord_10492_complete_payment"},
                    headers={"X-Admin-Token": ADMIN_TOKEN}).json()["deliveries"][0]
    assert row["destination"] == "tiktok" and row["attempts"] == 1
    assert row["last_http_status"] == 200 and row["last_code"] == 0
    assert row["last_request_id"]


def test_batch_results_in_input_order_with_rejections_and_duplicates(
        gateway: ServerThread, emulator: ServerThread) -> None:
    events = [
        {"event": "ViewContent", "event_id": "a1"},
        {"event": "AddToCart", "event_id": "a2", "properties": {"currency": "EURO"}},
        {"event": "Search", "properties": {"query": "red shoes"}},
        {"event": "ViewContent", "event_id": "a1"},
        {"event": 5, "event_id": "a5"},
    ]
    r = post(gateway, {"events": events})
    assert r.status_code == 202
    body = r.json()
    assert body["accepted"] == 2 and body["duplicates"] == 1
    assert [x["index"] for x in body["rejected"]] == [1, 4]
    assert body["rejected"][0]["errors"][0]["field"] == "properties.currency"
    assert body["rejected"][1]["errors"][0]["field"] == "event"
    ids = body["event_ids"]
    assert ids[0] == "a1" and ids[1] == "a2" and ids[3] == "a1" and len(ids) == 5
    assert ids[2] and ids[2] not in ("a1", "a2")  # a generated UUID, returned for reuse
    wait_for(lambda: len(received(emulator)) == 2)
    search = received(emulator, event="Search")[0]
    assert search["properties"]["search_string"] == "red shoes"
    # a repeat in a later request is a duplicate too, and is not delivered again
    again = post(gateway, {"event": "ViewContent", "event_id": "a1"}).json()
    assert again["accepted"] == 0 and again["duplicates"] == 1
    time.sleep(0.3)
    assert len(received(emulator, event_id="a1")) == 1


@pytest.mark.parametrize(("body", "headers", "status", "needle"), [
    (b'{"event": "Purchase"', None, 400, "not valid JSON"),
    (b'[1, 2]', None, 400, "event object"),
    (b'{"events": {"event": "x"}}', None, 400, "events must be an array"),
    (b'{"events": []}', None, 400, "empty"),
    (orjson.dumps({"events": [{"event": "ViewContent"}] * 501}), None, 413, "at most 500"),
    (b'{"event": "Purchase", "p": "' + b"x" * (1024 * 1024) + b'"}', None, 413, "1 MiB"),
    (b'{"event": "Purchase"}', {}, 401, "Bearer"),
    (b'{"event": "Purchase"}', {"Authorization": "Bearer nope"}, 401, "unknown"),
])
def test_bad_envelopes(gateway: ServerThread, body: bytes, headers: dict[str, str] | None,
                       status: int, needle: str) -> None:
    r = post(gateway, body, headers)
    assert r.status_code == status, r.text
    assert needle in r.json()["reason"]


@pytest.mark.parametrize(("event", "field"), [
    ({}, "event"),
    ({"event": ""}, "event"),
    ({"event": 5}, "event"),
    ({"event": "Purchase", "timestamp": now() + 3600}, "timestamp"),
    ({"event": "Purchase", "timestamp": now() - 30 * 86400}, "timestamp"),
    ({"event": "Purchase", "timestamp": "yesterday"}, "timestamp"),
    ({"event": "Purchase", "source": "email"}, "source"),
    ({"event": "Purchase", "event_id": {"x": 1}}, "event_id"),
    ({"event": "Purchase", "properties": {"value": "12,95"}}, "properties.value"),
    ({"event": "Purchase", "properties": {"currency": "XXY"}}, "properties.currency"),
    ({"event": "Purchase", "properties": {"contents": "a"}}, "properties.contents"),
    ({"event": "Purchase", "properties": {"contents": [{"content_id": 1.5}]}},
     "properties.contents.0.content_id"),
    ({"event": "Purchase", "user": {"ip": "999.1.1.1"}}, "user.ip"),
    ({"event": "Purchase", "source": "crm"}, "lead.lead_id"),
    ({"event": "Purchase", "source": "app"}, "app.app_id"),
    ({"event": "Purchase", "user": {"first_name": 7}}, "user.first_name"),
    ({"event": "Purchase", "limited_data_use": "yes"}, "limited_data_use"),
    ({"event": "Purchase", "consent": {"marketing": "yes"}}, "consent.marketing"),
])
def test_each_bad_field_is_named(gateway: ServerThread, event: dict[str, Any],
                                 field: str) -> None:
    r = post(gateway, event)
    assert r.status_code == 202
    body = r.json()
    assert body["accepted"] == 0
    fields = [e["field"] for e in body["rejected"][0]["errors"]]
    assert field in fields, body
    assert all(e["reason"] for e in body["rejected"][0]["errors"])


def test_timestamps_in_seconds_milliseconds_and_iso(gateway: ServerThread,
                                                    emulator: ServerThread) -> None:
    t = now() - 120
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    r = post(gateway, {"events": [{"event": "Contact", "event_id": "s", "timestamp": t},
                                  {"event": "Contact", "event_id": "ms", "timestamp": t * 1000},
                                  {"event": "Contact", "event_id": "iso", "timestamp": iso}]})
    assert r.json()["accepted"] == 3
    wait_for(lambda: len(received(emulator, event="Contact")) == 3)
    assert {e["event_time"] for e in received(emulator, event="Contact")} == {t}


def test_consent_is_applied(gateway: ServerThread, emulator: ServerThread) -> None:
    user = {"email": "a@example.com", "phone": "+4917012345678", "external_id": "c1",
            "ttclid": "E.C.P.x"}
    r = post(gateway, {"events": [
        {"event": "Purchase", "event_id": "denied", "user": user,
         "consent": {"marketing": "denied"}},
        {"event": "Purchase", "event_id": "nodata", "user": user,
         "consent": {"marketing": "granted", "ad_user_data": "denied",
                     "ad_personalization": "granted"}},
        {"event": "Purchase", "event_id": "ldu", "user": user,
         "consent": {"marketing": "granted", "ad_user_data": "granted",
                     "ad_personalization": "denied"}},
        {"event": "Purchase", "event_id": "eea-silent", "user": user,
         "consent": {"region": "DE"}},
    ]})
    assert r.json()["accepted"] == 4
    wait_for(lambda: len(received(emulator, event="CompletePayment")) == 2)
    time.sleep(0.3)
    assert not received(emulator, event_id="denied")
    assert not received(emulator, event_id="eea-silent")  # EEA without consent = denied
    nodata = received(emulator, event_id="nodata")[0]
    assert set(nodata["user"]) == {"ttclid"}
    assert received(emulator, event_id="ldu")[0]["limited_data_use"] is True
    view = httpx.get(f"{gateway.url}/v1/deliveries", params={"event_id": "denied"},
                     headers={"X-Admin-Token": ADMIN_TOKEN}).json()["deliveries"][0]
    assert view["state"] == "suppressed" and "marketing" in view["reason"]


def test_invalid_email_and_phone_are_dropped_never_sent_raw(gateway: ServerThread,
                                                            emulator: ServerThread) -> None:
    r = post(gateway, {"event": "Lead", "event_id": "l1",
                       "user": {"email": "not-an-email", "phone": "12", "external_id": "x"}})
    body = r.json()
    assert body["accepted"] == 1
    assert any("user.email" in w for w in body.get("warnings", []))
    assert all("not-an-email" not in w for w in body.get("warnings", []))
    wait_for(lambda: bool(received(emulator, event_id="l1")))
    sent = received(emulator, event_id="l1")[0]
    assert sent["event"] == "SubmitForm"
    assert "email" not in sent["user"] and "phone" not in sent["user"]


def tiktok_post(gw: ServerThread, body: dict[str, Any], token: str | None = SOURCE_KEY
                ) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Access-Token"] = token
    r = httpx.post(f"{gw.url}/open_api/v1.3/event/track/", content=orjson.dumps(body),
                   headers=headers)
    assert r.status_code == 200
    return dict(r.json())


def test_tiktok_compatible_endpoint(gateway: ServerThread, emulator: ServerThread) -> None:
    good = {"event_source": "web", "event_source_id": PIXEL, "data": [
        {"event": "CompletePayment", "event_time": now(), "event_id": "tt1",
         "user": {"email": EMAIL_HASH, "phone": ["+12133734253"], "ttp": "2.abc"},
         "properties": {"value": 20, "currency": "USD"}, "limited_data_use": True}]}
    answer = tiktok_post(gateway, good)
    assert answer["code"] == 0 and answer["message"] == "OK" and answer["request_id"]
    wait_for(lambda: bool(received(emulator, event_id="tt1")))
    sent = received(emulator, event_id="tt1")[0]
    assert sent["user"]["email"] == [EMAIL_HASH] and sent["user"]["phone"] == [PHONE_HASH]
    assert sent["limited_data_use"] is True

    assert tiktok_post(gateway, good, token=None)["code"] == 40104
    assert tiktok_post(gateway, good, token="wrong")["code"] == 40105
    bad = {**good, "data": [good["data"][0], {"event": "Purchase", "event_time": "soon"}]}
    answer = tiktok_post(gateway, bad)
    assert answer["code"] == 40002 and "data.1.event_time" in answer["message"]
    bad_currency = {**good, "data": [{**good["data"][0], "event_id": "tt2",
                                      "properties": {"currency": "usdollar"}}]}
    answer = tiktok_post(gateway, bad_currency)
    assert answer["code"] == 40002 and "data.0.properties.currency" in answer["message"]
    wrong_pixel = {**good, "event_source_id": "OTHERPIXEL"}
    assert "event_source_id" in tiktok_post(gateway, wrong_pixel)["message"]
    time.sleep(0.2)
    assert not received(emulator, event_id="tt2")


def test_no_raw_pii_in_database_or_logs(storage_url: str, emulator: ServerThread,
                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    raw_email, raw_phone = "Private.Person@Example.org", "+49 170 9876543"
    with ServerThread(create_app(make_settings(storage_url, emulator.url))) as gw:
        r = post(gw, {"events": [
            {"event": "Purchase", "event_id": f"p{i}",
             "user": {"email": raw_email, "phone": raw_phone, "external_id": "cust-secret-77"},
             "properties": {"value": 1, "currency": "EUR"}} for i in range(20)]})
        assert r.json()["accepted"] == 20
        wait_for(lambda: len(received(emulator, event="CompletePayment")) == 20)
    stored = stored_bytes(storage_url)
    assert hashlib.sha256(raw_email.lower().encode()).hexdigest().encode() in stored
    for needle in (raw_email, raw_email.lower(), "9876543", "cust-secret-77",
                   "test-access-token"):
        assert needle.encode() not in stored, needle
        assert needle not in caplog.text, needle


def test_no_raw_pii_from_free_form_fields_in_database_wal_or_logs(
        tmp_path: Path, emulator: ServerThread, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    db = tmp_path / "freeform.db"
    email, phone, note_email = "Hidden.Person@Example.org", "+49 170 5550123", "x9y@corp.example"
    with ServerThread(create_app(make_settings(db, emulator.url))) as gw:
        r = post(gw, {"events": [
            {"event": "Purchase", "event_id": f"ff{i}",
             "properties": {"value": 1, "currency": "EUR", "email": email,
                            "note": f"contact {note_email}", "custom": {"tel": phone},
                            "ref": phone},
             "page": {"url": f"https://shop.example/thanks?ttclid=E.C.P.ff&email={email}",
                      "referrer": f"https://shop.example/c?phone={phone}"}}
            for i in range(10)]})
        body = r.json()
        assert body["accepted"] == 10
        assert any("properties.email: moved to user.email" in w for w in body["warnings"])
        wait_for(lambda: len(received(emulator, event="CompletePayment")) == 10)
        sent = received(emulator, event_id="ff0")[0]
        assert sent["user"]["email"] == [hashlib.sha256(email.lower().encode()).hexdigest()]
        assert sent["page"]["url"] == "https://shop.example/thanks?ttclid=E.C.P.ff"
        assert "note" not in sent["properties"] and "ref" not in sent["properties"]
        # Read while the gateway runs, so the WAL (not yet checkpointed away) is read too.
        files = [p for p in tmp_path.iterdir() if p.name.startswith("freeform")]
        assert any(p.name.endswith("-wal") for p in files)
        stored = b"".join(p.read_bytes() for p in files)
    for needle in (email, email.lower(), note_email, "5550123", "Hidden.Person"):
        assert needle.encode() not in stored, needle
        assert needle not in caplog.text, needle


def test_a_nul_character_refuses_its_event_by_name_on_every_engine(
        gateway: ServerThread, emulator: ServerThread) -> None:
    """PostgreSQL cannot store U+0000: an event holding one is refused naming the field (a
    commit failing with 503 would make the sender retry it for ever), the rest of the batch
    is kept, and a lookup by such an id finds nothing instead of failing."""
    t = now()
    r = post(gateway, {"events": [
        {"event": "Purchase", "event_id": "n1", "timestamp": t,
         "properties": {"note": "a\x00b", "value": 1, "currency": "EUR"}},
        {"event": "ViewContent", "event_id": "n2", "timestamp": t, "user": {"x\x00y": "1"}},
        {"event": "Search\x00", "event_id": "n3", "timestamp": t},
        {"event": "ViewContent", "event_id": "n4", "timestamp": t}]})
    assert r.status_code == 202, r.text
    answer = r.json()
    assert answer["accepted"] == 1 and answer["event_ids"][3] == "n4"
    assert [(x["index"], x["errors"][0]["field"]) for x in answer["rejected"]] == [
        (0, "properties.note"), (1, "user.x\\u0000y"), (2, "event")]
    assert "NUL" in answer["rejected"][0]["errors"][0]["reason"]
    wait_for(lambda: bool(received(emulator, event_id="n4")))

    answer = tiktok_post(gateway, {"event_source": "web", "event_source_id": PIXEL, "data": [
        {"event": "ViewContent", "event_time": t, "event_id": "n\x005"}]})
    assert answer["code"] == 40002 and "data.0.event_id" in answer["message"]

    admin = {"X-Admin-Token": ADMIN_TOKEN}
    for path, params in (("/v1/deliveries", {"event_id": "n\x004"}),
                         ("/v1/deliveries", {"order_id": "1\x002"}),
                         ("/", {"q": "n\x004"})):
        r = httpx.get(f"{gateway.url}{path}", params=params, headers=admin)
        assert r.status_code == 200, (path, r.text)
    assert httpx.get(f"{gateway.url}/v1/events/n%004/trace", headers=admin).status_code == 404
    diagnostics = httpx.get(f"{gateway.url}/v1/diagnostics", headers=admin).json()
    assert diagnostics["totals"]["rejected"] == 4  # the three above and the drop-in's
