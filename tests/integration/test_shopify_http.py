"""Shopify webhooks through the real gateway over loopback, delivered to the emulator."""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import hmac
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from pixelrelay.app import create_app
from pixelrelay.config import Secret, SourceSettings
from tests.conftest import ADMIN_TOKEN, emu_state, make_settings
from tests.support import ServerThread, wait_for

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "shopify" / "orders-create.json"
SECRET = "shpss_test_secret_0001"
ORDER_ID = 820982911946154508


def sha(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


@pytest.fixture
def gateway(tmp_path: Path, emulator: ServerThread) -> Iterator[ServerThread]:
    base = make_settings(tmp_path / "gw.db", emulator.url)
    shops = (SourceSettings(name="shop", kind="shopify", key=Secret(""), secret=Secret(SECRET)),
             SourceSettings(name="shop-paid", kind="shopify", key=Secret(""),
                            secret=Secret(SECRET), purchase_topic="orders/paid",
                            content_id="variant_id"))
    app = create_app(dataclasses.replace(base, sources=base.sources + shops))
    with ServerThread(app) as server:
        yield server


def recent_order(order_id: int = ORDER_ID, **changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = copy.deepcopy(orjson.loads(FIXTURE.read_bytes()))
    stamp = datetime.fromtimestamp(time.time() - 120, UTC).isoformat()
    doc.update(id=order_id, created_at=stamp, processed_at=stamp,
               landing_site="/products/ipod?ttclid=E.C.P.shop1", browser_ip="203.0.113.7")
    doc["billing_address"]["phone"] = "(213) 373-4253"
    doc.update(changes)
    return doc


def deliver(gw: ServerThread, payload: Any, *, topic: str = "orders/create",
            source: str = "shop", webhook_id: str = "wh-1", secret: str = SECRET,
            signature: str | None = None) -> httpx.Response:
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    if signature is None:
        signature = base64.b64encode(
            hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    headers = {"Content-Type": "application/json", "X-Shopify-Topic": topic,
               "X-Shopify-Webhook-Id": webhook_id, "X-Shopify-Shop-Domain": "t.myshopify.com"}
    if signature:
        headers["X-Shopify-Hmac-Sha256"] = signature
    return httpx.post(f"{gw.url}/v1/webhooks/shopify/{source}", content=body, headers=headers)


def received(emulator: ServerThread, event_id: str) -> list[dict[str, Any]]:
    return [e for e in emu_state(emulator).events if e.get("event_id") == event_id]


def settle(gw: ServerThread, emulator: ServerThread, order_id: int) -> None:
    """Send a sentinel order and wait for it: anything queued before it has been sent by then."""
    r = deliver(gw, recent_order(order_id), webhook_id=f"sentinel-{order_id}")
    assert r.status_code == 200, r.text
    wait_for(lambda: bool(received(emulator, f"ord_{order_id}_complete_payment")))


def test_signed_order_reaches_tiktok_as_complete_payment(gateway: ServerThread,
                                                         emulator: ServerThread) -> None:
    r = deliver(gateway, recent_order())
    assert r.status_code == 200, r.text
    event_id = f"ord_{ORDER_ID}_complete_payment"
    assert r.json() == {"accepted": 1, "duplicates": 0, "event_ids": [event_id]}
    wait_for(lambda: bool(received(emulator, event_id)))
    sent = received(emulator, event_id)[0]
    assert sent["event"] == "CompletePayment" and sent["_event_source"] == "web"
    user = sent["user"]
    assert user["email"] == [sha("bob.norman@hostmail.com")]
    assert user["phone"] == [sha("+12133734253")]
    assert user["external_id"] == [sha("207119551")]
    assert user["ttclid"] == "E.C.P.shop1" and user["ip"] == "203.0.113.7"
    props = sent["properties"]
    assert props["order_id"] == str(ORDER_ID) and props["value"] == 409.94
    assert props["currency"] == "USD" and props["num_items"] == 3
    assert [c["content_id"] for c in props["contents"]] == [
        "IPOD2008GREEN", "IPOD2008RED", "IPOD2008BLACK"]
    assert abs(sent["event_time"] - (time.time() - 120)) < 5


def test_bad_signature_is_refused_and_nothing_is_queued(gateway: ServerThread,
                                                        emulator: ServerThread) -> None:
    doc = recent_order(111)
    assert deliver(gateway, doc, secret="wrong-secret").status_code == 401
    assert deliver(gateway, doc, signature="").status_code == 401
    # signed body and sent body differ by one byte
    good = base64.b64encode(hmac.new(SECRET.encode(), orjson.dumps(doc),
                                     hashlib.sha256).digest()).decode()
    r = deliver(gateway, orjson.dumps(doc) + b"\n", signature=good)
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    settle(gateway, emulator, 112)
    assert received(emulator, "ord_111_complete_payment") == []
    log = httpx.get(f"{gateway.url}/v1/deliveries", params={"event_id": "ord_111_complete_payment"},
                    headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert log.status_code == 200 and log.json()["deliveries"] == []


def test_redelivery_is_a_duplicate_and_sent_once(gateway: ServerThread,
                                                 emulator: ServerThread) -> None:
    doc = recent_order(222)
    first = deliver(gateway, doc, webhook_id="wh-222")
    assert first.json()["accepted"] == 1
    wait_for(lambda: bool(received(emulator, "ord_222_complete_payment")))
    again = deliver(gateway, doc, webhook_id="wh-222")
    assert again.status_code == 200
    assert again.json() == {"accepted": 0, "duplicates": 1,
                            "event_ids": ["ord_222_complete_payment"]}
    settle(gateway, emulator, 223)
    assert len(received(emulator, "ord_222_complete_payment")) == 1


def test_only_the_configured_purchase_topic_counts(gateway: ServerThread,
                                                   emulator: ServerThread) -> None:
    ignored = deliver(gateway, recent_order(333), topic="orders/paid")
    assert ignored.status_code == 200
    body = ignored.json()
    assert body["accepted"] == 0 and body["event_ids"] == [] and "purchase_topic" in body["ignored"]
    other = deliver(gateway, recent_order(333), topic="products/update")
    assert other.status_code == 200 and "not mapped" in other.json()["ignored"]
    # the source configured for orders/paid takes it, with variant ids as content ids
    paid = deliver(gateway, recent_order(334), topic="orders/paid", source="shop-paid")
    assert paid.json()["accepted"] == 1
    wait_for(lambda: bool(received(emulator, "ord_334_complete_payment")))
    sent = received(emulator, "ord_334_complete_payment")[0]
    assert sent["properties"]["contents"][0]["content_id"] == "39072856"
    settle(gateway, emulator, 335)
    assert received(emulator, "ord_333_complete_payment") == []


def test_checkout_becomes_initiate_checkout(gateway: ServerThread,
                                            emulator: ServerThread) -> None:
    checkout = {"id": 30000000000000001, "token": "ck_tok", "cart_token": "cart_tok",
                "created_at": datetime.fromtimestamp(time.time() - 30, UTC).isoformat(),
                "email": "", "customer": None, "landing_site": None, "currency": "EUR",
                "total_price": "25.00", "source_name": "web",
                "line_items": [{"sku": "", "variant_id": 40000000000000002, "product_id": 7,
                                "title": "Mug", "quantity": 2, "price": "12.50"}]}
    r = deliver(gateway, checkout, topic="checkouts/create")
    assert r.status_code == 200, r.text
    event_id = "chk_ck_tok_initiate_checkout"  # a checkout's own kind of id, by its token
    assert r.json()["event_ids"] == [event_id]
    wait_for(lambda: bool(received(emulator, event_id)))
    sent = received(emulator, event_id)[0]
    assert sent["event"] == "InitiateCheckout"
    assert sent["properties"]["contents"] == [
        {"content_id": "40000000000000002", "quantity": 2, "price": 12.5, "content_name": "Mug"}]
    # Shopify's tokens find the visitor's session; they are not the destination's business.
    assert "checkout_token" not in sent["properties"] and "cart_token" not in sent["properties"]
    assert "email" not in sent.get("user", {})


def test_unknown_source_bad_payloads_and_rejected_events(gateway: ServerThread) -> None:
    assert deliver(gateway, recent_order(), source="nope").status_code == 404
    assert deliver(gateway, recent_order(), source="backend").status_code == 404  # not shopify
    r = deliver(gateway, b"{not json")
    assert r.status_code == 400 and r.json()["error"] == "malformed_json"
    r = deliver(gateway, recent_order(id=None))
    assert r.status_code == 400 and "no usable id" in r.json()["reason"]
    # the unmodified fixture is from 2008: outside the 7-day window, refused with the field
    r = deliver(gateway, FIXTURE.read_bytes())
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["timestamp"]


@pytest.mark.parametrize(("assume", "state"), [
    ("session", "suppressed"),  # no session answer known: the region rule (DE needs consent)
    ("granted", "pending"),
    ("denied", "suppressed"),
])
def test_an_order_takes_its_region_from_the_billing_country_and_the_sources_assume(
        tmp_path: Path, emulator: ServerThread, assume: str, state: str) -> None:
    from pixelrelay.config import ConsentSettings

    base = make_settings(tmp_path / "assume.db", emulator.url,
                         consent=ConsentSettings(require_in_regions=("EEA",)))
    shop = SourceSettings(name="shop", kind="shopify", key=Secret(""), secret=Secret(SECRET),
                          assume=assume)
    with ServerThread(create_app(dataclasses.replace(base, sources=(shop,)))) as gw:
        order = recent_order(ORDER_ID + 7)
        order["billing_address"] = {**order["billing_address"], "country_code": "DE",
                                    "country": "Germany"}
        assert deliver(gw, order).status_code == 200
        event_id = f"ord_{ORDER_ID + 7}_complete_payment"
        rows = httpx.get(f"{gw.url}/v1/deliveries", params={"event_id": event_id},
                         headers={"X-Admin-Token": ADMIN_TOKEN}).json()["deliveries"]
        on_its_way = ("pending", "in_flight", "delivered")
        assert rows[0]["state"] in (on_its_way if state == "pending" else (state,))
        if state == "pending":
            wait_for(lambda: bool(received(emulator, event_id)))
            sent = received(emulator, event_id)[0]
            assert sent["user"]["country"] == "de" and sent["user"]["zip_code"]
        else:
            # Nobody denied anything: the reason names the rule that decided.
            assert rows[0]["reason"] == {
                "session": "consent: none given; region DE requires it "
                           "([consent] require_in_regions)",
                "denied": "consent: none given; assumed denied by the source's `assume`"}[assume]
