"""Visitor journeys in real Chromium (issue 8): one consent and one click id from the ad
landing to the order, whichever source reports the order, checked at the emulator."""

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

from pixelrelay.config import Secret, SessionSettings, Settings, SourceSettings
from tests.browser.shop import (
    Site,
    collect_hits,
    cookies,
    idle,
    loaded,
    open_site,
    ttq_calls,
    wait_hits,
)
from tests.conftest import ADMIN_TOKEN, SOURCE_KEY, emu_state, make_settings
from tests.support import wait_for

pytest.importorskip("playwright.sync_api")
STRICT_KEY = "site-key-journey-strict"  # consent_required = true
OPEN_KEY = "site-key-journey-open"  # consent_required = false, page_views = true
SHOPIFY_SECRET = "shpss_journey_secret"
FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "shopify" / "orders-create.json"
AUTH = {"Authorization": f"Bearer {SOURCE_KEY}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# Long, so a browser purchase is still held whatever the machine's load when the order's
# Shopify copy arrives; that copy ends the hold, so no journey waits for it.
PURCHASE_HOLD_S = 30.0

BANNER = """<button id="yes" onclick="pixelrelay('consent', {marketing: true,
    ad_user_data: true, ad_personalization: true})">Accept</button>
  <button id="no" onclick="pixelrelay('consent', {marketing: false, ad_user_data: false,
    ad_personalization: false})">Reject</button>"""
# What a consent platform does on the next pages: it remembers the answer and repeats it.
REMEMBERED_YES = ("pixelrelay('consent', {marketing: true, ad_user_data: true, "
                  "ad_personalization: true});")
REMEMBERED_NO = ("pixelrelay('consent', {marketing: false, ad_user_data: false, "
                 "ad_personalization: false});")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    def settings(shop_origin: str, emulator_url: str) -> Settings:
        base = make_settings(Path(tmp_path_factory.mktemp("gw")) / "gw.db", emulator_url)
        extra = (SourceSettings(name="strict", kind="browser", key=Secret(STRICT_KEY),
                                allowed_origins=(shop_origin,), consent_required=True),
                 SourceSettings(name="open", kind="browser", key=Secret(OPEN_KEY),
                                allowed_origins=(shop_origin,), page_views=True),
                 SourceSettings(name="shop", kind="shopify", key=Secret(""),
                                secret=Secret(SHOPIFY_SECRET)))
        return dataclasses.replace(base, sources=base.sources + extra,
                                   sessions=SessionSettings(purchase_hold_s=PURCHASE_HOLD_S))

    with open_site(STRICT_KEY, settings) as site:
        yield site


def shopify_order(order_id: int, **changes: Any) -> dict[str, Any]:
    """An orders/create body as Shopify sends it: email, phone, customer id, the buyer's IP
    and user agent, but no ttclid (the landing URL Shopify saw had none)."""
    doc: dict[str, Any] = copy.deepcopy(orjson.loads(FIXTURE.read_bytes()))
    stamp = datetime.fromtimestamp(time.time() - 60, UTC).isoformat()
    doc.update(id=order_id, created_at=stamp, processed_at=stamp, landing_site="/products/1",
               browser_ip="203.0.113.7", cart_token=None, checkout_token=None,
               client_details={"browser_ip": "203.0.113.7", "user_agent": "ShopBrowser/1.0"})
    doc["billing_address"]["phone"] = "(213) 373-4253"
    doc.update(changes)
    return doc


def webhook(site: Site, order: dict[str, Any]) -> httpx.Response:
    body = orjson.dumps(order)
    signature = base64.b64encode(
        hmac.new(SHOPIFY_SECRET.encode(), body, hashlib.sha256).digest()).decode()
    return httpx.post(f"{site.gateway.url}/v1/webhooks/shopify/shop", content=body, headers={
        "Content-Type": "application/json", "X-Shopify-Topic": "orders/create",
        "X-Shopify-Webhook-Id": f"wh-{order['id']}", "X-Shopify-Hmac-Sha256": signature,
        "X-Shopify-Shop-Domain": "journey.myshopify.com"})


def backend_order(site: Site, order_id: str, session_id: str) -> None:
    """The shop's backend reporting an order with the visitor's session (and what it knows)."""
    r = httpx.post(f"{site.gateway.url}/v1/events", headers=AUTH, json={
        "event": "Purchase", "session_id": session_id,
        "user": {"email": "buyer@example.com", "phone": "+14155550123", "external_id": "c-1"},
        "properties": {"order_id": order_id, "value": 20, "currency": "EUR"}})
    assert r.status_code == 202 and r.json()["accepted"] == 1, r.text


def deliveries(site: Site, event_id: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{site.gateway.url}/v1/deliveries", params={"event_id": event_id},
                  headers=ADMIN)
    assert r.status_code == 200, r.text
    rows: list[dict[str, Any]] = r.json()["deliveries"]
    return rows


def settle(site: Site, name: str) -> None:
    """Wait until a sentinel sent now has reached TikTok: what was sendable is sent by then."""
    r = httpx.post(f"{site.gateway.url}/v1/events", headers=AUTH,
                   json={"event": "ViewContent", "event_id": f"sentinel-{name}"})
    assert r.status_code == 202, r.text
    site.delivered(f"sentinel-{name}")


def hit_answer(page: Any, needle: str, action: Any) -> dict[str, Any]:
    """Run `action` and return the gateway's answer to the collect hit containing `needle`."""
    with page.expect_response(lambda r: "/v1/collect" in r.url and needle in (
            r.request.post_data or "")) as hit:
        action()
    answer: dict[str, Any] = hit.value.json()
    return answer


def test_granted_ad_click_reaches_tiktok_with_its_ttclid_whoever_reports_the_order(
        site: Site, context: Any) -> None:
    landing = site.page("/grant/landing", BANNER)
    product = site.page("/grant/product", """<script>pixelrelay('track', 'ViewContent',
        {content_id: 'SKU-1'}, {event_id: 'vc-grant'});</script>""", first=REMEMBERED_YES)
    cart = site.page("/grant/cart", "<script>pixelrelay('link', {cart_token: 'cart-grant'});"
                     "</script>", first=REMEMBERED_YES)
    page = context.new_page()
    page.goto(landing + "?ttclid=E.C.P.grant")
    loaded(page)
    # The answer alone (the landing tracks nothing) opens the session with the click id.
    assert hit_answer(page, "E.C.P.grant", lambda: page.click("#yes"))["session_id"]
    assert cookies(context)["prx_ttclid"]["value"] == "E.C.P.grant"
    page.goto(product)  # the shop's URLs have no ttclid from here on
    assert site.delivered("vc-grant")["user"]["ttclid"] == "E.C.P.grant"
    # Under consent_required the link carries the visitor's consent, so it links.
    assert hit_answer(page, "cart-grant", lambda: page.goto(cart))["linked"] == ["cart_token"]
    session_id = cookies(context)["prx_sid"]["value"]

    assert webhook(site, shopify_order(7001, cart_token="cart-grant")).status_code == 200
    backend_order(site, "7002", session_id)
    for event_id in ("ord_7001_complete_payment", "ord_7002_complete_payment"):
        purchase = site.delivered(event_id)
        assert purchase["user"]["ttclid"] == "E.C.P.grant", event_id
        assert purchase["limited_data_use"] is False, event_id


def test_a_denied_visitors_orders_never_reach_tiktok(site: Site, context: Any) -> None:
    landing = site.page("/deny/landing", BANNER + """<script>pixelrelay('track',
        'ViewContent', {}, {event_id: 'vc-deny'});</script>""")
    cart = site.page("/deny/cart", """<script>
        pixelrelay('identify', {email: 'denied@example.com'});
        pixelrelay('link', {cart_token: 'cart-deny'});</script>""", first=REMEMBERED_NO)
    page = context.new_page()
    hits = collect_hits(page)
    page.goto(landing + "?ttclid=E.C.P.deny")
    loaded(page)
    assert hit_answer(page, "denied", lambda: page.click("#no"))["consent"] == "denied"
    answer = hit_answer(page, "cart-deny", lambda: page.goto(cart))
    assert answer["linked"] == ["cart_token"] and answer["consent"] == "denied"
    session_id = page.evaluate("pixelrelay.sessionId")  # no cookie: the page knows it
    # The tag told the server the answer and the cart, nothing of the visitor.
    assert [sorted(h) for h in hits] == [["consent", "consent_source", "k", "sid"],
                                         ["consent", "consent_source", "k", "link", "sid"]]
    assert all(h["consent"]["marketing"] == "denied" for h in hits)
    assert ttq_calls(page) == [] and not {"prx_sid", "prx_ttclid"} & set(cookies(context))

    assert webhook(site, shopify_order(7101, cart_token="cart-deny")).status_code == 200
    backend_order(site, "7102", session_id)
    settle(site, "deny")
    for event_id in ("ord_7101_complete_payment", "ord_7102_complete_payment", "vc-deny"):
        assert site.received(event_id) == [], event_id
    for event_id in ("ord_7101_complete_payment", "ord_7102_complete_payment"):
        [row] = deliveries(site, event_id)
        assert (row["state"], row["reason"]) == ("suppressed", "consent: marketing denied")


def test_a_withdrawn_consent_follows_the_session_to_its_orders(site: Site,
                                                              context: Any) -> None:
    cart = site.page("/revoke/cart", BANNER + "<script>pixelrelay('link', "
                     "{cart_token: 'cart-revoke'});</script>", first=REMEMBERED_YES)
    page = context.new_page()
    answer = hit_answer(page, "cart-revoke", lambda: page.goto(cart + "?ttclid=E.C.P.revoke"))
    assert answer["linked"] == ["cart_token"]
    session_id = cookies(context)["prx_sid"]["value"]
    # The visitor changes their mind on the same page: the session's answer is now "no".
    assert hit_answer(page, "denied", lambda: page.click("#no"))["session_id"] == session_id

    assert webhook(site, shopify_order(7201, cart_token="cart-revoke")).status_code == 200
    backend_order(site, "7202", session_id)  # the backend read the prx_sid cookie
    settle(site, "revoke")
    for event_id in ("ord_7201_complete_payment", "ord_7202_complete_payment"):
        assert site.received(event_id) == [], event_id
        [row] = deliveries(site, event_id)
        assert (row["state"], row["reason"]) == ("suppressed", "consent: marketing denied")


def test_consent_mode_default_denied_holds_everything_until_the_update(
        site: Site, context: Any) -> None:
    gtag = """<script>window.dataLayer = [];
      function gtag() { dataLayer.push(arguments); }
      gtag('consent', 'default', {ad_storage: 'denied', ad_user_data: 'denied',
                                  ad_personalization: 'denied'});</script>"""
    url = site.page("/gcm/landing", """<button id="update" onclick="gtag('consent', 'update',
        {ad_storage: 'granted', ad_user_data: 'granted', ad_personalization: 'granted'})">OK
      </button><script>
        pixelrelay('track', 'ViewContent', {}, {event_id: 'vc-gcm-held'});
        pixelrelay('link', {cart_token: 'cart-gcm'});</script>""", key=OPEN_KEY, head=gtag)
    page = context.new_page()
    hits = collect_hits(page)
    page.goto(url + "?ttclid=E.C.P.gcm")
    loaded(page)
    idle(page, 0.5)
    assert hits == [] and ttq_calls(page) == []  # not asked yet: held, even the PageView
    assert hit_answer(page, "cart-gcm", lambda: page.click("#update"))["linked"] == [
        "cart_token"]
    wait_for(lambda: len(ttq_calls(page)) == 2)
    assert [c["name"] for c in ttq_calls(page)] == ["Pageview", "ViewContent"]
    assert {h.get("event") for h in hits} >= {"PageView", "ViewContent"}
    assert all(h["consent_source"] == "consent_mode" for h in hits)
    for call in ttq_calls(page):
        event = site.delivered(call["event_id"])
        assert event["user"]["ttclid"] == "E.C.P.gcm" and event["limited_data_use"] is False


@pytest.mark.parametrize("order", ["init-then-consent", "consent-then-init",
                                   "consent-in-a-later-script"])
def test_a_denied_visitors_page_view_never_leaves_the_browser(site: Site, context: Any,
                                                              order: str) -> None:
    path = f"/order/{order}"
    if order == "init-then-consent":  # both queued before the tag loads, init first
        url = site.page(path, f"<script>{REMEMBERED_NO}</script>", key=OPEN_KEY)
    elif order == "consent-then-init":
        url = site.page(path, "", key=OPEN_KEY, first=REMEMBERED_NO)
    else:  # the tag loaded (not async) and initialised before the banner's script runs
        url = site.page(path, f"<p>content</p><script>{REMEMBERED_NO}</script>",
                        key=OPEN_KEY, sync=True)
    page = context.new_page()
    hits = collect_hits(page)
    page.goto(url + "?ttclid=E.C.P.order")
    wait_hits(page, hits, 1)
    idle(page, 0.3)
    # Only the answer went, without the page (whose URL has the ttclid) or any event.
    assert [sorted(h) for h in hits] == [["consent", "consent_source", "k", "sid"]], hits
    assert hits[0]["consent"]["marketing"] == "denied" and ttq_calls(page) == []
    assert not {"prx_sid", "prx_ttclid"} & set(cookies(context))
    settle(site, order)
    assert not [e for e in emu_state(site.emulator).events
                if (e.get("page") or {}).get("url", "").startswith(url)]


def test_the_delivered_purchase_has_every_copys_match_keys(site: Site, context: Any) -> None:
    landing = site.page("/merge/landing", BANNER)
    thanks = site.page("/merge/thanks", """<script>
        pixelrelay('identify', {email: 'bob.norman@hostmail.com'});
        pixelrelay('track', 'Purchase', {order_id: '7301', value: 0.01, currency: 'EUR'});
      </script>""", first=REMEMBERED_YES)
    page = context.new_page()
    page.goto(landing + "?ttclid=E.C.P.merge")
    loaded(page)
    hit_answer(page, "E.C.P.merge", lambda: page.click("#yes"))
    assert hit_answer(page, "7301", lambda: page.goto(thanks))["accepted"] == 1
    event_id = "ord_7301_complete_payment"
    [held] = deliveries(site, event_id)
    assert held["state"] == "pending"  # the browser copy waits for the order's server copy
    duplicates_before = emu_state(site.emulator).duplicates

    assert webhook(site, shopify_order(7301, landing_site="/")).status_code == 200
    purchase = site.delivered(event_id)
    user, props = purchase["user"], purchase["properties"]
    # The union of both copies: the browser's click id and page, Shopify's phone and customer
    # id; Shopify's value and currency (the server copy is the truth, not the page's 0.01).
    assert user["ttclid"] == "E.C.P.merge" and user["ttp"] == "2.standin-ttp"
    assert user["email"] == [hashlib.sha256(b"bob.norman@hostmail.com").hexdigest()]
    assert len(user["phone"]) == 1 and len(user["external_id"]) == 1
    assert (props["value"], props["currency"]) == (409.94, "USD")
    assert purchase["page"]["url"] == thanks
    settle(site, "merge")
    [row] = deliveries(site, event_id)
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    assert len(site.received(event_id)) == 1
    assert emu_state(site.emulator).duplicates == duplicates_before
    trace = httpx.get(f"{site.gateway.url}/v1/events/{event_id}/trace", headers=ADMIN).json()
    assert [(c["channel"], c["outcome"]) for c in trace["copies"]] == [
        ("browser", "first"), ("shopify", "merged")]
