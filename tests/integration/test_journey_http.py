"""One visitor, one consent, every copy of a purchase counting, every rejection explained:
issue 8's server side over real HTTP (the Chromium journeys live in tests/browser)."""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from pixelrelay.app import create_app
from pixelrelay.config import Secret, SessionSettings, SourceSettings
from tests.conftest import ADMIN_TOKEN, SOURCE_KEY, emu_state, make_settings
from tests.support import ServerThread, wait_for

SITE_KEY = "site-key-journey"
STRICT_KEY = "site-key-journey-strict"
ORIGIN = "https://shop.test"
AUTH = {"Authorization": f"Bearer {SOURCE_KEY}"}
ADMIN = {"X-Admin-Token": ADMIN_TOKEN}
HOLD_S = 1.0


def sha(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


@pytest.fixture
def gateway(storage_url: str, emulator: ServerThread) -> Iterator[ServerThread]:
    base = make_settings(storage_url, emulator.url)
    browser = (SourceSettings(name="site", kind="browser", key=Secret(SITE_KEY),
                              allowed_origins=(ORIGIN,)),
               SourceSettings(name="strict", kind="browser", key=Secret(STRICT_KEY),
                              allowed_origins=(ORIGIN,), consent_required=True))
    settings = dataclasses.replace(base, sources=base.sources + browser,
                                   sessions=SessionSettings(purchase_hold_s=HOLD_S))
    with ServerThread(create_app(settings)) as server:
        yield server


def collect(gw: ServerThread, body: dict[str, Any], key: str = SITE_KEY,
            origin: str = ORIGIN) -> httpx.Response:
    return httpx.post(f"{gw.url}/v1/collect", content=orjson.dumps({"k": key, **body}),
                      headers={"Content-Type": "text/plain", "Origin": origin,
                               "User-Agent": "Mozilla/5.0 (journey)"})


def server_event(gw: ServerThread, event: dict[str, Any]) -> dict[str, Any]:
    r = httpx.post(f"{gw.url}/v1/events", headers=AUTH, json=event)
    assert r.status_code == 202, r.text
    answer: dict[str, Any] = r.json()
    return answer


def at_tiktok(emulator: ServerThread, event_id: str) -> list[dict[str, Any]]:
    return [e for e in emu_state(emulator).events if e.get("event_id") == event_id]


def deliveries(gw: ServerThread, **query: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{gw.url}/v1/deliveries", params=query,
                                     headers=ADMIN).json()
    return body


def purchase(order: str, value: float, **extra: Any) -> dict[str, Any]:
    return {"event": "Purchase", "properties": {"order_id": order, "value": value,
                                                "currency": "EUR"}, **extra}


def test_the_server_copy_merges_into_a_held_browser_copy_and_wins(
        gateway: ServerThread, emulator: ServerThread) -> None:
    granted = {"marketing": "granted", "ad_user_data": "granted",
               "ad_personalization": "granted"}
    tag = collect(gateway, {**purchase("5001", 0.01, user={"email": "ann@example.com"}),
                            "consent": granted,
                            "page": {"url": "https://shop.test/thanks?ttclid=E.C.P.tag"}})
    assert tag.status_code == 202 and tag.json()["accepted"] == 1
    time.sleep(HOLD_S / 3)
    assert not at_tiktok(emulator, "ord_5001_complete_payment")  # held for the order's copy
    backend = server_event(gateway, purchase("5001", 99.0, user={"phone": "+4917012345678",
                                                                 "external_id": "cust-7"}))
    assert backend["duplicates"] == 1  # absorbed into the first copy: merged, not lost
    wait_for(lambda: bool(at_tiktok(emulator, "ord_5001_complete_payment")))
    time.sleep(0.3)
    (sent,) = at_tiktok(emulator, "ord_5001_complete_payment")
    # The union of the copies' match keys, and the server's value: the tag's 0.01 (a public
    # site key anyone can post with) never reaches TikTok.
    assert sent["user"]["email"] == [sha("ann@example.com")]
    assert sent["user"]["phone"] == [sha("+4917012345678")]
    assert sent["user"]["external_id"] == [sha("cust-7")]
    assert sent["user"]["ttclid"] == "E.C.P.tag"
    assert sent["properties"]["value"] == 99.0
    trace = httpx.get(f"{gateway.url}/v1/events/ord_5001_complete_payment/trace",
                      headers=ADMIN).json()
    assert [(c["channel"], c["outcome"]) for c in trace["copies"]] == [
        ("browser", "first"), ("server", "merged")]
    totals = httpx.get(f"{gateway.url}/v1/diagnostics", headers=ADMIN).json()["totals"]
    assert totals["merged"] == 1


def test_a_browser_purchase_goes_alone_after_its_hold(gateway: ServerThread,
                                                      emulator: ServerThread) -> None:
    collect(gateway, purchase("5002", 12.0, consent={"marketing": "granted"}))
    wait_for(lambda: bool(at_tiktok(emulator, "ord_5002_complete_payment")), timeout=15)
    # Sent, so a later copy is a duplicate, and nothing is merged into what TikTok has.
    later = server_event(gateway, purchase("5002", 12.0, user={"phone": "+4917012345679"}))
    assert later["duplicates"] == 1
    trace = httpx.get(f"{gateway.url}/v1/events/ord_5002_complete_payment/trace",
                      headers=ADMIN).json()
    assert [c["outcome"] for c in trace["copies"]] == ["first", "duplicate"]


def test_a_denial_recorded_by_the_tag_follows_the_cart_to_the_order(
        gateway: ServerThread, emulator: ServerThread) -> None:
    # The tag of a consent-required site records the visitor's "no" with the cart token.
    r = collect(gateway, {"link": {"cart_token": "cart-denied-1"},
                          "consent": {"marketing": "denied"}}, key=STRICT_KEY)
    assert r.status_code == 202 and r.json()["consent"] == "denied"
    assert "set-cookie" not in r.headers  # nothing of the visitor is kept but the answer
    order = server_event(gateway, purchase("5003", 50.0, user={"email": "bo@example.com"},
                                           properties={"order_id": "5003",
                                                       "cart_token": "cart-denied-1"}))
    assert order["accepted"] == 1
    (row,) = deliveries(gateway, event_id="ord_5003_complete_payment")["deliveries"]
    assert (row["state"], row["reason"]) == ("suppressed", "consent: marketing denied")
    time.sleep(0.3)
    assert not at_tiktok(emulator, "ord_5003_complete_payment")


def test_a_granted_link_restores_the_click_and_the_consent(gateway: ServerThread,
                                                           emulator: ServerThread) -> None:
    landing = collect(gateway, {"event": "ViewContent", "event_id": "vc-g1",
                                "consent": {"marketing": "granted", "ad_user_data": "denied"},
                                "page": {"url": "https://shop.test/?ttclid=E.C.P.g1"}},
                      key=STRICT_KEY)
    sid = landing.json()["session_id"]
    # link under consent_required works once the visitor has granted
    r = httpx.post(f"{gateway.url}/v1/collect", content=orjson.dumps({
        "k": STRICT_KEY, "link": {"cart_token": "cart-g1"},
        "consent": {"marketing": "granted", "ad_user_data": "denied"}}),
        headers={"Content-Type": "text/plain", "Origin": ORIGIN},
        cookies={"prx_sid": sid})
    assert r.json()["linked"] == ["cart_token"]
    server_event(gateway, purchase("5004", 20.0, user={"email": "cy@example.com"},
                                   properties={"order_id": "5004", "cart_token": "cart-g1"}))
    wait_for(lambda: bool(at_tiktok(emulator, "ord_5004_complete_payment")))
    (sent,) = at_tiktok(emulator, "ord_5004_complete_payment")
    assert sent["user"]["ttclid"] == "E.C.P.g1"
    # The session's ad_user_data "denied" came along: no hashed email goes to TikTok.
    assert "email" not in sent["user"]


def test_every_rejection_can_be_found_by_event_id_or_order_id(gateway: ServerThread) -> None:
    answer = server_event(gateway, purchase("5005", 0.0, properties={
        "order_id": "5005", "value": "12,50", "currency": "EUR"},
        user={"email": "secret.buyer@example.com"}))
    assert answer["event_ids"] == ["ord_5005_complete_payment"] and answer["rejected"]
    for query in ({"event_id": "ord_5005_complete_payment"}, {"order_id": "5005"}):
        found = deliveries(gateway, **query)
        (refusal,) = found["rejected"]
        assert refusal["order_id"] == "5005" and refusal["event"] == "Purchase"
        assert refusal["problems"] == [{
            "field": "properties.value", "reason": "must be a non-negative number without "
            "currency symbol or thousands separator, such as 129.95"}]
    page = httpx.get(f"{gateway.url}/", params={"q": "5005"}, headers=ADMIN).text
    assert "Refused at ingest" in page and "such as 129.95" in page
    assert "secret.buyer" not in page and "12,50" not in page


def refused_total(gateway: ServerThread, reason: str) -> float:
    """The process-wide counter: earlier tests in the same run may have counted refusals."""
    line = f'pixelrelay_collect_refused_total{{reason="{reason}"}} '
    text = httpx.get(f"{gateway.url}/metrics").text
    return next((float(x[len(line):]) for x in text.splitlines() if x.startswith(line)), 0.0)


def test_refused_tag_hits_are_counted_and_alerted(gateway: ServerThread) -> None:
    before = refused_total(gateway, "origin_not_allowed")
    for _ in range(4):
        assert collect(gateway, {"event": "PageView"}, key="wrong-key").status_code == 401
    # Eleven refusals from one address, past the credential guard's burst of ten: a wrong
    # origin with the right key is no guessed credential, so none of them is a 429.
    for _ in range(7):
        assert collect(gateway, {"event": "PageView"},
                       origin="https://www.shop.test").status_code == 403
    d = httpx.get(f"{gateway.url}/v1/diagnostics", params={"window": "1h"},
                  headers=ADMIN).json()
    counts = {(x["reason"], x["origin"]): x["count"] for x in d["collect_refused"]}
    assert counts == {("unknown_key", ORIGIN): 4,
                      ("origin_not_allowed", "https://www.shop.test"): 7}
    (alert,) = [a for a in d["alerts"] if a["key"] == "collect_refused"]
    assert "https://www.shop.test" in alert["check"] and "allowed_origins" in alert["check"]
    assert refused_total(gateway, "origin_not_allowed") - before == 7
